//! Mails per second through the outbox: queued in transactions, then delivered by the
//! worker to a real local SMTP server (tests/smtp/server.py), on SQLite and, when
//! `PORTAL_TEST_PG_URL` is set, PostgreSQL. Prints a table; times are wall clock on
//! whatever else the machine is doing, so compare rows of one run.
//!
//!     PORTAL_TEST_PYTHON=target/pyenv/bin/python cargo bench --bench mail_outbox

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use portal::config::Config;
use portal::crypto::SecretBox;
use portal::mail::worker::Worker;
use portal::mail::{EmailAddress, Mailer};
use portal::metrics::Metrics;
use portal::store::Store;
use portal::theme::Themes;

const MAILS: usize = 1000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let inbox = tempfile::tempdir()?;
    let python = std::env::var("PORTAL_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut smtp = Command::new(python)
        .arg(root.join("tests/smtp/server.py"))
        .args(["--port", &port.to_string(), "--dir"])
        .arg(inbox.path())
        .stdout(Stdio::piped())
        .spawn()?;
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(smtp.stdout.take().unwrap()).read_line(&mut line)?;
        anyhow::ensure!(line.starts_with("listening"), "SMTP server did not start");
    }

    println!("{MAILS} mails per row; SMTP server: aiosmtpd on 127.0.0.1:{port}");
    println!(
        "{:<10} {:>11} {:>14} {:>14}",
        "database", "concurrency", "queued/s", "delivered/s"
    );
    let mut databases = vec![("sqlite", None)];
    if let Ok(url) = std::env::var("PORTAL_TEST_PG_URL") {
        databases.push(("postgres", Some(url)));
    }
    for (name, admin_url) in databases {
        for concurrency in [1u32, 8, 32] {
            let data = tempfile::tempdir()?;
            let mut config = Config {
                data_dir: data.path().to_path_buf(),
                themes_dir: root.join("themes"),
                tenants_dir: root.join("tenants"),
                smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
                mail_concurrency: concurrency,
                mail_tenant_limit_per_hour: u32::MAX,
                ..Config::default()
            };
            if let Some(admin) = &admin_url {
                config.database_url = Some(fresh_pg_database(admin).await?);
            }
            let (queued, delivered) = run(&config).await?;
            println!("{name:<10} {concurrency:>11} {queued:>14.0} {delivered:>14.0}");
        }
    }
    smtp.kill()?;
    smtp.wait()?;
    Ok(())
}

/// Queues `MAILS` mails, then lets one worker deliver them all; returns both rates.
async fn run(config: &Config) -> anyhow::Result<(f64, f64)> {
    let store = Store::connect(config).await?;
    store.migrate().await?;
    portal::startup::import_seed_tenants(&store, &config.tenants_dir).await?;
    let tenant = store
        .tenant_by_slug("daiwakenpo")
        .await?
        .expect("seed tenant");
    let themes = Themes::new(&config.themes_dir)?;
    let mailer = Mailer::new(config, themes, SecretBox::from_key(&[9; 32]));

    let start = Instant::now();
    for i in 0..MAILS {
        let to = EmailAddress::parse(&format!("bench{i}@example.jp")).unwrap();
        mailer
            .send(&store, &tenant, &to, "test", tera::Context::new())
            .await?;
    }
    let queued = MAILS as f64 / start.elapsed().as_secs_f64();

    let worker = Worker::new(config, store.clone(), mailer, Arc::new(Metrics::new()))?;
    let start = Instant::now();
    let mut sent = 0;
    while sent < MAILS {
        sent += worker.round().await?;
    }
    let delivered = MAILS as f64 / start.elapsed().as_secs_f64();
    let counts = store.mail_counts().await?;
    let daiwa = counts.iter().find(|c| c.tenant == "daiwakenpo").unwrap();
    anyhow::ensure!(daiwa.sent == MAILS as i64, "not all delivered: {daiwa:?}");
    store.close().await;
    Ok((queued, delivered))
}

async fn fresh_pg_database(admin: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let name = format!("portal_bench_{}", portal::random_token(6));
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    Ok(format!("{}/{name}", admin.rsplit_once('/').unwrap().0))
}
