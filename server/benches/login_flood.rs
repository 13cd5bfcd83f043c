//! Password logins per second through the real server, against raw argon2id hashes per
//! second with the same parameters measured in the same run; and the p99 latency of a
//! signed-in member's top page, alone and during a login flood. Prints a table.
//!
//!     cargo bench --bench login_flood

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use portal::config::Config;
use portal::startup::Application;
use portal::store::Store;

const FLOOD_CLIENTS: usize = 16;
const FLOOD_SECS: u64 = 10;
const PAGE_REQUESTS: usize = 1000;
/// How often the measured member loads the top page (a busy reader, not a load generator).
const PAGE_INTERVAL: Duration = Duration::from_millis(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let data = tempfile::tempdir()?;
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        ops_listen: "127.0.0.1:0".parse()?,
        data_dir: data.path().to_path_buf(),
        themes_dir: root.join("themes"),
        tenants_dir: root.join("tenants"),
        log: "warn".into(),
        ..Config::default()
    };
    let cores = std::thread::available_parallelism()?.get();

    // Raw argon2id, one hash per core at a time, same parameters as the server.
    let raw = raw_hashes_per_sec(&config, cores, Duration::from_secs(FLOOD_SECS / 2));

    let app = Application::build(config.clone()).await?;
    let addr = app.member_addr;
    tokio::spawn(app.run());
    let store = Store::connect(&config).await?;
    let tenant = store.tenant_by_slug("daiwakenpo").await?.unwrap();
    // Members who log in during the flood (temporary credentials: a login opens a flow).
    let logins = support::members_with_passwords(&store, &config, &tenant, FLOOD_CLIENTS).await?;
    // A signed-in member whose top page is measured.
    let token = support::signed_in_member(&store, &config, &tenant).await?;
    let base = format!("http://daiwakenpo.localhost:{}", addr.port());
    let page_client = reqwest::Client::builder()
        .resolve("daiwakenpo.localhost", addr)
        .build()?;
    let top = |client: reqwest::Client, base: String, token: String| async move {
        let start = Instant::now();
        let response = client
            .get(format!("{base}/"))
            .header("Cookie", format!("portal_session={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        assert!(body.contains("サービスメニュー"), "not the member top page");
        start.elapsed()
    };

    // Top page alone.
    for _ in 0..20 {
        top(page_client.clone(), base.clone(), token.clone()).await;
    }
    let mut quiet = Vec::new();
    let mut tick = tokio::time::interval(PAGE_INTERVAL);
    for _ in 0..PAGE_REQUESTS {
        tick.tick().await;
        quiet.push(top(page_client.clone(), base.clone(), token.clone()).await);
    }

    // Login flood: every client logs in again and again with the right password.
    let counts = Arc::new(support::Flood::default());
    let mut flood = Vec::new();
    for (user_id, password) in logins {
        let counts = Arc::clone(&counts);
        flood.push(tokio::spawn(async move {
            support::login_loop(addr, "daiwakenpo.localhost", &user_id, &password, &counts).await;
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // let the flood build up

    // Phase 1: the flood alone, for logins/s.
    let counted_from = counts.done.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(FLOOD_SECS)).await;
    let logins_per_sec =
        (counts.done.load(Ordering::Relaxed) - counted_from) as f64 / start.elapsed().as_secs_f64();

    // Phase 2: a member reads the top page every PAGE_INTERVAL during the flood.
    let mut loaded = Vec::new();
    let mut tick = tokio::time::interval(PAGE_INTERVAL);
    for _ in 0..PAGE_REQUESTS {
        tick.tick().await;
        loaded.push(top(page_client.clone(), base.clone(), token.clone()).await);
    }
    counts.stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.await?;
    }

    let (p50q, p99q) = support::percentiles(&mut quiet);
    let (p50l, p99l) = support::percentiles(&mut loaded);
    println!(
        "{cores} cores; argon2id m={} KiB t={} p={}",
        config.argon2_memory_kib, config.argon2_iterations, config.argon2_parallelism
    );
    println!("| measure | value |");
    println!("| --- | ---: |");
    println!("| raw argon2id hashes/s ({cores} threads) | {raw:.1} |");
    println!(
        "| password logins/s through the server ({FLOOD_CLIENTS} clients) | {logins_per_sec:.1} |"
    );
    println!("| logins/s ÷ hashes/s | {:.2} |", logins_per_sec / raw);
    println!(
        "| logins answered 503 busy | {} |",
        counts.busy.load(Ordering::Relaxed)
    );
    println!(
        "| top page p50 / p99 alone (ms) | {:.2} / {:.2} |",
        p50q, p99q
    );
    println!(
        "| top page p50 / p99 during the flood (ms) | {:.2} / {:.2} ({} requests) |",
        p50l,
        p99l,
        loaded.len()
    );
    println!("| p99 during flood ÷ p99 alone | {:.2} |", p99l / p99q);
    Ok(())
}

fn raw_hashes_per_sec(config: &Config, threads: usize, time: Duration) -> f64 {
    let params = Params::new(
        config.argon2_memory_kib,
        config.argon2_iterations,
        config.argon2_parallelism,
        Some(32),
    )
    .unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (params, count) = (params.clone(), count.clone());
            scope.spawn(move || {
                let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                let mut out = [0u8; 32];
                while start.elapsed() < time {
                    argon2
                        .hash_password_into(b"benchmark password", b"saltsaltsaltsalt", &mut out)
                        .unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}
