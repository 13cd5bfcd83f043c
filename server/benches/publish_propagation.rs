//! The time from 「公開」 on one node to the change being served by another: node A is the
//! service function (as the console or the API call it), node B a whole server on the same
//! database, polled on its public top page every 10 ms until the new welcome text appears.
//! SQLite (one file, two connection pools) and, when `PORTAL_TEST_PG_URL` names a server,
//! PostgreSQL; both with the default tenant refresh interval of 1,000 ms.
//!
//!     cargo bench --bench publish_propagation
//!     PORTAL_TEST_PG_URL=postgres://… cargo bench --bench publish_propagation

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use portal::admin::{Acting, Ctx};
use portal::config::Config;
use portal::ids::AdminId;
use portal::store::{AdminRole, Store};

const RUNS: usize = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    println!("「公開」 on node A → served by node B, {RUNS} publishes (ms)");
    println!("| database | refresh interval | p50 | p90 | max |");
    println!("|---|---:|---:|---:|---:|");
    let mut databases = vec![("sqlite", None)];
    if let Ok(url) = std::env::var("PORTAL_TEST_PG_URL") {
        databases.push(("postgres", Some(url)));
    }
    for (name, admin_url) in databases {
        let data = tempfile::tempdir()?;
        let mut config = Config {
            data_dir: data.path().to_path_buf(),
            themes_dir: root.join("themes"),
            tenants_dir: root.join("tenants"),
            admin_ui_dir: root.join("admin-ui"),
            listen: "127.0.0.1:0".parse()?,
            ops_listen: "127.0.0.1:0".parse()?,
            demo: Some(false),
            ..Config::default()
        };
        if let Some(admin) = &admin_url {
            config.database_url = Some(support::fresh_pg_database(admin).await?);
        }
        // Node B: a whole server.
        let node_b = portal::startup::Application::build(config.clone()).await?;
        let b_addr = node_b.member_addr;
        tokio::spawn(node_b.run());
        // Node A: its own store and caches on the same database.
        let store = Store::connect(&config).await?;
        let state = portal::startup::build_state(config.clone(), store.clone()).await?;
        let acting = Acting {
            admin: AdminId::from_db("bench".to_owned()),
            role: AdminRole::Admin,
            ip: "127.0.0.1".into(),
            user_agent: "bench".into(),
        };
        let full = acting.require_admin().map_err(|e| anyhow::anyhow!("{e}"))?;
        let http = reqwest::Client::new();
        let url = format!("http://{b_addr}/");
        let mut times = Vec::with_capacity(RUNS);
        for run in 0..RUNS {
            let tenant = store.tenant_by_slug("daiwakenpo").await?.unwrap();
            let ctx = Ctx {
                state: &state,
                tenant: &tenant,
                acting: &acting,
            };
            let current = portal::admin::settings::draft(&ctx)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let marker = format!("ようこそ（第{run}回）");
            let mut definition = current.definition.clone();
            definition.settings.welcome = marker.clone();
            portal::admin::settings::save(&ctx, &current, definition)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let started = Instant::now();
            portal::admin::settings::publish(&ctx, &full)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            loop {
                let body = http
                    .get(&url)
                    .header("Host", "daiwakenpo.localhost")
                    .send()
                    .await?
                    .text()
                    .await?;
                if body.contains(&marker) {
                    break;
                }
                if started.elapsed() > Duration::from_secs(10) {
                    anyhow::bail!("node B did not serve the change within 10 s");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            times.push(started.elapsed());
            // Publishes land at different points of node B's refresh cycle: spread over one
            // interval in a fixed, scrambled order.
            let wait = (run as u64 * 389) % config.tenant_refresh_ms;
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "| {name} | {} ms | {:.0} | {:.0} | {:.0} |",
            config.tenant_refresh_ms,
            ms(times[RUNS / 2]),
            ms(times[RUNS * 9 / 10]),
            ms(times[RUNS - 1])
        );
    }
    Ok(())
}
