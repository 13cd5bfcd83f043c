//! Password logins per second through the real server, against raw argon2id hashes per
//! second with the same parameters measured in the same run; and the p99 latency of a
//! signed-in member's top page, alone and during a login flood. Prints a table.
//!
//!     cargo bench --bench login_flood

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    let hasher = portal::auth::password::PasswordHasher::new(&config)?;

    // Members who log in during the flood (temporary credentials: a login opens a flow).
    let email = portal::mail::EmailAddress::parse("bench@example.jp").unwrap();
    let mut logins = Vec::new();
    for i in 0..FLOOD_CLIENTS {
        let details = portal::member::MemberDetails {
            display_name: "ベンチ",
            birth_date: "1980-01-01",
            email: &email,
        };
        let c = portal::member::create_member(&store, &hasher, &tenant, &details).await?;
        logins.push((c.user_id, c.password, i));
    }
    // A signed-in member whose top page is measured.
    let reader = portal::member::create_member(
        &store,
        &hasher,
        &tenant,
        &portal::member::MemberDetails {
            display_name: "読者",
            birth_date: "1980-01-01",
            email: &email,
        },
    )
    .await?;
    let member = store
        .member_by_user_id(&tenant.id, &reader.user_id)
        .await?
        .unwrap();
    store
        .set_password_hash(&tenant.id, &member.id, &member.password_hash, true)
        .await?;
    store
        .accept_terms(&tenant.id, &member.id, &tenant.terms.current, "127.0.0.1")
        .await?;
    let (token, token_hash) = portal::auth::session::new_token();
    store
        .create_session(
            &tenant.id,
            &token_hash,
            &member.id,
            "password",
            &portal::store::SessionClient {
                ip: "127.0.0.1",
                user_agent: "login_flood bench",
            },
        )
        .await?;
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
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicU64::new(0));
    let mut flood = Vec::new();
    for (user_id, password, _) in logins {
        let (stop, done, busy, base) = (stop.clone(), done.clone(), busy.clone(), base.clone());
        flood.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .resolve("daiwakenpo.localhost", addr)
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let page = client
                .get(format!("{base}/login"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let token = page
                .split("name=\"csrf_token\" value=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap()
                .replace("&#x2F;", "/"); // as the browser decodes the attribute
            let body: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("csrf_token", &token)
                .append_pair("user_id", &user_id)
                .append_pair("password", &password)
                .finish();
            while !stop.load(Ordering::Relaxed) {
                let response = client
                    .post(format!("{base}/login"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                match response.status().as_u16() {
                    303 => done.fetch_add(1, Ordering::Relaxed),
                    503 => busy.fetch_add(1, Ordering::Relaxed),
                    other => panic!("login answered {other}"),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // let the flood build up

    // Phase 1: the flood alone, for logins/s.
    let counted_from = done.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(FLOOD_SECS)).await;
    let logins_per_sec =
        (done.load(Ordering::Relaxed) - counted_from) as f64 / start.elapsed().as_secs_f64();

    // Phase 2: a member reads the top page every PAGE_INTERVAL during the flood.
    let mut loaded = Vec::new();
    let mut tick = tokio::time::interval(PAGE_INTERVAL);
    for _ in 0..PAGE_REQUESTS {
        tick.tick().await;
        loaded.push(top(page_client.clone(), base.clone(), token.clone()).await);
    }
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.await?;
    }

    let (p50q, p99q) = percentiles(&mut quiet);
    let (p50l, p99l) = percentiles(&mut loaded);
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
        busy.load(Ordering::Relaxed)
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

fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.99))
}
