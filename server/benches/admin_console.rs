//! The console's member search on a society of 100,000 members (SQLite, and PostgreSQL
//! when `PORTAL_TEST_PG_URL` names a server), p50 and p99 per kind of query through the
//! same service function the console and the API call; and notification letters rendered
//! per second by the console's print view.
//!
//!     cargo bench --bench admin_console
//!     PORTAL_TEST_PG_URL=postgres://… cargo bench --bench admin_console

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use portal::config::Config;
use portal::store::{MemberSearch, NewMember};
use portal::theme::{Themes, DEFAULT_THEME};

const MEMBERS: usize = 100_000;
const RUNS: usize = 200;
const BATCH: usize = 2_000;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    println!("member search on {MEMBERS} members, {RUNS} runs per row (ms)");
    println!("| database | query | results | p50 | p99 |");
    println!("|---|---|---:|---:|---:|");
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
        search_rows(name, &config).await?;
    }
    letters(&root)?;
    Ok(())
}

async fn search_rows(db: &str, config: &Config) -> anyhow::Result<()> {
    let (store, tenant) = support::seeded_store(config).await?;
    let names = [
        "山田", "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "中村",
    ];
    let given = ["太郎", "花子", "一郎", "陽子", "健", "美咲"];
    for chunk in 0..MEMBERS / BATCH {
        let rows: Vec<(String, String, String, String)> = (0..BATCH)
            .map(|i| {
                let n = chunk * BATCH + i;
                (
                    format!("m{n:07}x"),
                    format!("{} {}{}", names[n % names.len()], given[n % given.len()], n),
                    format!("{}-{:02}-{:02}", 1940 + n % 70, 1 + n % 12, 1 + n % 28),
                    format!("member{n}@example.jp"),
                )
            })
            .collect();
        let new: Vec<NewMember> = rows
            .iter()
            .map(|(user_id, name, birth, email)| NewMember {
                user_id,
                display_name: name,
                birth_date: birth,
                email,
                password_hash: "$argon2id$bench",
                card_symbol: "12",
                card_number: "3456",
                name_kana: "",
                user_id_chosen: false,
            })
            .collect();
        store.create_members(&tenant.id, &new).await?;
    }
    let queries: Vec<(&str, MemberSearch)> = vec![
        (
            "first page, no filter",
            MemberSearch {
                limit: 51,
                ..Default::default()
            },
        ),
        (
            "user ID prefix",
            MemberSearch {
                query: Some("m00123".into()),
                limit: 51,
                ..Default::default()
            },
        ),
        (
            "name part (kanji)",
            MemberSearch {
                query: Some("花子1234".into()),
                limit: 51,
                ..Default::default()
            },
        ),
        (
            "name part, many matches",
            MemberSearch {
                query: Some("田中".into()),
                limit: 51,
                ..Default::default()
            },
        ),
        (
            "name part and state",
            MemberSearch {
                query: Some("花子".into()),
                state: Some("temporary".into()),
                limit: 51,
                ..Default::default()
            },
        ),
        (
            "e-mail prefix",
            MemberSearch {
                query: Some("member9999".into()),
                limit: 51,
                ..Default::default()
            },
        ),
        (
            "birth date",
            MemberSearch {
                birth_date: Some("1980-05-13".into()),
                limit: 51,
                ..Default::default()
            },
        ),
        (
            "state: before first login",
            MemberSearch {
                state: Some("temporary".into()),
                limit: 51,
                ..Default::default()
            },
        ),
        (
            "page 1,000 (keyset)",
            MemberSearch {
                after: Some("m0050000x".into()),
                limit: 51,
                ..Default::default()
            },
        ),
    ];
    for (what, search) in queries {
        let mut times = Vec::with_capacity(RUNS);
        let mut results = 0;
        for _ in 0..RUNS {
            let start = Instant::now();
            results = store.search_members(&tenant.id, &search).await?.len();
            times.push(start.elapsed());
        }
        times.sort();
        println!(
            "| {db} | {what} | {results} | {:.2} | {:.2} |",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
    store.close().await;
    Ok(())
}

fn letters(root: &Path) -> anyhow::Result<()> {
    let console = Themes::console(root.join("admin-ui"))?;
    let ui = console.get(DEFAULT_THEME)?;
    println!();
    println!("| letters per page | pages rendered | letters/s |");
    println!("|---:|---:|---:|");
    for per_page in [1usize, 50] {
        let letters: Vec<serde_json::Value> = (0..per_page)
            .map(|i| {
                serde_json::json!({
                    "display_name": format!("山田 太郎{i}"),
                    "user_id": format!("abcd{i:06}"),
                    "password": "k7m2p9q4r8s3",
                })
            })
            .collect();
        let n = 2_000 / per_page.max(1) + 20;
        let start = Instant::now();
        for _ in 0..n {
            let mut ctx = tera::Context::new();
            ctx.insert("letters", &letters);
            ctx.insert("expired", &false);
            ctx.insert("login_url", "https://daiwakenpo.example.jp/");
            ctx.insert("issued_on", "2026/12/02");
            ctx.insert("csrf_token", "x");
            ctx.insert(
                "tenant",
                &serde_json::json!({"slug": "daiwakenpo", "name": "大和証券グループ健康保険組合",
                    "contact": "健保組合 事務局", "logo_url": "/static/logo.svg"}),
            );
            std::hint::black_box(ui.render("letters.html", &mut ctx)?);
        }
        let secs = start.elapsed().as_secs_f64();
        println!("| {per_page} | {n} | {:.0} |", (n * per_page) as f64 / secs);
    }
    Ok(())
}
