//! 「一括登録」 of a 10,000-row roster through the same service functions as the console and
//! the API: rows per second for the dry run (read, check, compare with the members) and for
//! 「取り込む」 (one argon2id hash per member with the production parameters, one
//! transaction), on SQLite and, when `PORTAL_TEST_PG_URL` names a server, PostgreSQL.
//!
//!     cargo bench --bench import
//!     PORTAL_TEST_PG_URL=postgres://… cargo bench --bench import

mod support;

use std::path::Path;
use std::time::Instant;

use portal::admin::{Acting, Ctx};
use portal::config::Config;
use portal::ids::AdminId;
use portal::store::AdminRole;

const ROWS: usize = 10_000;

/// A roster of `ROWS` distinct people, as Excel writes it (UTF-8 with a BOM, CRLF), a tenth
/// of the dates in the Japanese calendar.
fn roster() -> Vec<u8> {
    let mut out = String::from("\u{feff}氏名,氏名カナ,生年月日,メールアドレス,記号,番号\r\n");
    for i in 0..ROWS {
        let year = 1950 + (i % 55);
        let (month, day) = (1 + i % 12, 1 + i % 28);
        let date = if i % 10 == 0 && (1927..=1988).contains(&year) {
            format!("S{}.{month}.{day}", year - 1925)
        } else {
            format!("{year}/{month}/{day}")
        };
        out.push_str(&format!(
            "会員 {i:05},カイイン {i:05},{date},member{i:05}@example.jp,{},{}\r\n",
            3000 + i / 1000,
            i
        ));
    }
    out.into_bytes()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let bytes = roster();
    println!(
        "roster import, {ROWS} rows ({} KB), rows per second",
        bytes.len() / 1024
    );
    println!("| database | dry run s | dry run rows/s | 取り込む s | 取り込む rows/s |");
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
            ..Config::default()
        };
        if let Some(admin) = &admin_url {
            config.database_url = Some(support::fresh_pg_database(admin).await?);
        }
        let (store, tenant) = support::seeded_store(&config).await?;
        let state = portal::startup::build_state(config, store).await?;
        let acting = Acting {
            admin: AdminId::from_db("bench".to_owned()),
            role: AdminRole::Admin,
            ip: "127.0.0.1".into(),
            user_agent: "bench".into(),
        };
        let full = acting.require_admin().map_err(|e| anyhow::anyhow!("{e}"))?;
        let ctx = Ctx {
            state: &state,
            tenant: &tenant,
            acting: &acting,
        };
        let started = Instant::now();
        let report = portal::admin::import::check(&ctx, &full, "bench.csv", &bytes)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let dry = started.elapsed().as_secs_f64();
        assert_eq!(report.good, ROWS, "{:?}", report.problems.first());
        let id = report.import_id.expect("a clean roster waits for 取り込む");
        let started = Instant::now();
        let done = portal::admin::import::commit(&ctx, &full, &id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let commit = started.elapsed().as_secs_f64();
        assert_eq!(done.created, ROWS);
        println!(
            "| {name} | {dry:.2} | {:.0} | {commit:.1} | {:.0} |",
            ROWS as f64 / dry,
            ROWS as f64 / commit
        );
    }
    Ok(())
}
