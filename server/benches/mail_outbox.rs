//! Mails per second through the outbox: queued in transactions, then delivered by the
//! worker to a real local SMTP server (tests/smtp/server.py), on SQLite and, when
//! `PORTAL_TEST_PG_URL` is set, PostgreSQL. Prints a table; times are wall clock on
//! whatever else the machine is doing, so compare rows of one run.
//!
//!     PORTAL_TEST_PYTHON=target/pyenv/bin/python cargo bench --bench mail_outbox

mod support;

const MAILS: usize = 1000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let smtp = support::SmtpServer::start()?;
    let port = smtp.port;
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
            let mut config = support::mail_config(data.path(), smtp.url(), concurrency);
            if let Some(admin) = &admin_url {
                config.database_url = Some(support::fresh_pg_database(admin).await?);
            }
            let (queued, delivered) = support::mails_per_second(&config, MAILS).await?;
            println!("{name:<10} {concurrency:>11} {queued:>14.0} {delivered:>14.0}");
        }
    }
    drop(smtp);
    Ok(())
}
