//! Many societies on one node: 10,000 tenants against the 2 seed tenants alone.
//!
//! For each database it prints the time to onboard the tenants, the node's start-up time
//! (process start until `/readyz` answers 200), its resident memory after every tenant's
//! top page was served once, the top page's throughput and p99 latency with requests spread
//! over 2 hosts and over all 10,000 (32 connections, 10 s each), and the time for a change
//! to one tenant made through a second node's database to be served by the first.
//!
//!     cargo bench --bench scale
//!     PORTAL_TEST_PG_URL=postgres://… cargo bench --bench scale
//!
//! The server is the release binary in its own process, so its memory is its own; the load
//! generator shares the machine's cores with it, so compare ratios within one run.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use portal::config::Config;
use portal::store::Store;
use portal::tenant::TenantFile;

const TENANTS: usize = 10_000;
const CONNECTIONS: usize = 32;
const RUN: Duration = Duration::from_secs(10);
const CHANGES: usize = 10;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = support::root();
    let mut databases = vec![("SQLite", None)];
    if let Ok(url) = std::env::var("PORTAL_TEST_PG_URL") {
        databases.push(("PostgreSQL", Some(url)));
    }
    let mut rows = Vec::new();
    for (name, admin) in databases {
        for tenants in [2, TENANTS] {
            let data = tempfile::tempdir()?;
            let url = match &admin {
                Some(admin) => support::fresh_pg_database(admin).await?,
                None => format!("sqlite://{}", data.path().join("portal.db").display()),
            };
            let config = Config {
                database_url: Some(url.clone()),
                data_dir: data.path().to_path_buf(),
                tenants_dir: root.join("tenants"),
                ..Config::default()
            };
            let store = Store::connect(&config).await?;
            store.migrate().await?;
            portal::startup::import_seed_tenants(&store, &config.tenants_dir).await?;
            let started = Instant::now();
            let mut slugs = vec!["daiwakenpo".to_owned(), "kanekakenpo".to_owned()];
            for i in 0..tenants.saturating_sub(2) {
                let slug = format!("bench{i:05}");
                let file = TenantFile::parse(&portal::ops::scaffold(&slug)?)?;
                store.apply_tenant(&file).await?;
                slugs.push(slug);
            }
            let onboarding = started.elapsed();

            let node = support::Node::start(&url, data.path(), "warn")?;
            let startup = node.ready().await?;
            // Every tenant's top page once, so each is in the caches.
            let warm = Instant::now();
            load(node.member, &slugs, Some(slugs.len())).await;
            let warm = warm.elapsed();
            let rss = node.rss_mib();
            let two = load(node.member, &slugs[..2], None).await;
            let all = load(node.member, &slugs, None).await;

            // A change to one tenant, applied by another process's store (as node B's
            // console or the ops API would), until this node serves it.
            let mut reach = Vec::new();
            let http = reqwest::Client::new();
            for run in 0..CHANGES {
                let slug = &slugs[(run * 7919) % slugs.len()];
                let tenant = store.tenant_by_slug(slug).await?.unwrap();
                let mut file = tenant.to_file();
                file.settings.welcome = format!("変更{run}のお知らせ");
                let marker = file.settings.welcome.clone();
                let t = Instant::now();
                store.apply_tenant(&file).await?;
                loop {
                    let body = http
                        .get(format!("http://{}/", node.member))
                        .header("host", format!("{slug}.localhost"))
                        .send()
                        .await?
                        .text()
                        .await?;
                    if body.contains(&marker) {
                        break;
                    }
                    anyhow::ensure!(t.elapsed() < Duration::from_secs(10), "change not served");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                reach.push(t.elapsed());
            }
            reach.sort();
            rows.push(format!(
                "| {name} | {tenants} | {:.1} s | {:.2} s | {:.1} s | {rss} MiB | {:.0} req/s, p99 {:.1} ms | {:.0} req/s, p99 {:.1} ms | {:.2} | {} / {} ms |",
                onboarding.as_secs_f64(),
                startup.as_secs_f64(),
                warm.as_secs_f64(),
                two.rate,
                two.p99_ms,
                all.rate,
                all.p99_ms,
                all.rate / two.rate,
                reach[reach.len() / 2].as_millis(),
                reach[reach.len() - 1].as_millis(),
            ));
            drop(node);
            store.close().await;
        }
    }
    println!("| database | tenants | onboarding | start-up | first visit of every top page | resident memory | top page over 2 hosts | over every host | ratio | change served p50 / max |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

struct Load {
    rate: f64,
    p99_ms: f64,
}

/// Top pages from `CONNECTIONS` clients at once, each request to a random one of `slugs`,
/// for [`RUN`] (or `count` requests in all, each slug once in order).
async fn load(addr: std::net::SocketAddr, slugs: &[String], count: Option<usize>) -> Load {
    let slugs: Arc<Vec<String>> = Arc::new(slugs.to_vec());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let (slugs, next) = (Arc::clone(&slugs), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut latencies = Vec::new();
            let mut seed = 0x9e37_79b9_u64.wrapping_mul(c as u64 + 1);
            loop {
                let slug = match count {
                    Some(n) => {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        &slugs[i]
                    }
                    None => {
                        if started.elapsed() >= RUN {
                            break;
                        }
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        &slugs[(seed % slugs.len() as u64) as usize]
                    }
                };
                let t = Instant::now();
                let r = http
                    .get(format!("http://{addr}/"))
                    .header("host", format!("{slug}.localhost"))
                    .send()
                    .await
                    .expect("request");
                assert_eq!(r.status(), 200, "{slug}");
                r.bytes().await.expect("body");
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or_default();
    Load {
        rate: all.len() as f64 / elapsed,
        p99_ms: p99.as_secs_f64() * 1000.0,
    }
}
