//! What several benchmarks share: a fresh PostgreSQL database, the release server in its
//! own process, the local SMTP server, and mail delivered through the outbox.
//! Each benchmark uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portal::config::Config;
use portal::store::Store;

/// The repository's root (tenants, themes, tests).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The secret key the benchmarks' nodes run with.
pub const SECRET_KEY: &str = "YmVuY2gtb25seS1rZXktLS0zMi1ieXRlcy1sb25nLS0=";

/// A new, empty database on the PostgreSQL server that `admin` reaches; returns its URL.
pub async fn fresh_pg_database(admin: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let name = format!(
        "portal_bench_{}",
        portal::random_token(6).to_lowercase().replace('-', "_")
    );
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let base = admin.rsplit_once('/').unwrap().0;
    Ok(format!("{base}/{name}"))
}

/// `portal serve` (the release binary) in its own process.
pub struct Node {
    child: Child,
    pub member: std::net::SocketAddr,
    pub ops: std::net::SocketAddr,
    spawned: Instant,
}

impl Node {
    /// Starts a node on `url` with `log` as its `PORTAL_LOG`.
    pub fn start(url: &str, data: &Path, log: &str) -> anyhow::Result<Self> {
        let root = root();
        let spawned = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_portal"))
            .arg("serve")
            .env("PORTAL_DATABASE_URL", url)
            .env("PORTAL_DATA_DIR", data)
            .env("PORTAL_THEMES_DIR", root.join("themes"))
            .env("PORTAL_ADMIN_UI_DIR", root.join("admin-ui"))
            .env("PORTAL_TENANTS_DIR", root.join("tenants"))
            .env("PORTAL_LISTEN", "127.0.0.1:0")
            .env("PORTAL_OPS_LISTEN", "127.0.0.1:0")
            .env("PORTAL_DEMO", "false")
            .env("PORTAL_LOG", format!("{log},portal::cli=info"))
            .env("PORTAL_SECRET_KEY", SECRET_KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let (member, ops) = loop {
            let line = lines
                .next()
                .ok_or_else(|| anyhow::anyhow!("portal exited"))??;
            if let Some(rest) = line.split("listening member=").nth(1) {
                let (m, o) = rest.split_once(" ops=").unwrap();
                break (m.parse()?, o.trim().parse()?);
            }
        };
        // Whatever the node logs from now on is read and dropped, as a log collector would.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self {
            child,
            member,
            ops,
            spawned,
        })
    }

    /// Waits until `/readyz` answers 200; returns the time since the process started.
    pub async fn ready(&self) -> anyhow::Result<Duration> {
        let http = reqwest::Client::new();
        loop {
            let ok = http
                .get(format!("http://{}/readyz", self.ops))
                .send()
                .await
                .map(|r| r.status() == 200)
                .unwrap_or(false);
            if ok {
                return Ok(self.spawned.elapsed());
            }
            anyhow::ensure!(
                self.spawned.elapsed() < Duration::from_secs(60),
                "node not ready"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The local SMTP server of the tests (`tests/smtp/server.py`, aiosmtpd), storing what it
/// accepts in a temporary folder. `PORTAL_TEST_PYTHON` names the Python that has it.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    _inbox: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let inbox = tempfile::tempdir()?;
        // A relative path names a file under the project's root (cargo runs benches in
        // `server/`); a bare name is looked up on PATH.
        let python = match std::env::var("PORTAL_TEST_PYTHON") {
            Ok(p) if p.contains('/') => root().join(p),
            Ok(p) => p.into(),
            Err(_) => "python3".into(),
        };
        let mut child = Command::new(python)
            .arg(root().join("tests/smtp/server.py"))
            .args(["--port", &port.to_string(), "--dir"])
            .arg(inbox.path())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
        anyhow::ensure!(
            line.starts_with("listening"),
            "SMTP server did not start (PORTAL_TEST_PYTHON with aiosmtpd)"
        );
        Ok(Self {
            child,
            port,
            _inbox: inbox,
        })
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Queues `mails` test mails of daiwakenpo one transaction each, then lets one outbox
/// worker (of `config.mail_concurrency`) deliver them all; returns both rates per second.
pub async fn mails_per_second(config: &Config, mails: usize) -> anyhow::Result<(f64, f64)> {
    use portal::crypto::SecretBox;
    use portal::mail::worker::Worker;
    use portal::mail::{EmailAddress, Mailer};
    use portal::metrics::Metrics;
    use portal::theme::Themes;

    let (store, tenant) = seeded_store(config).await?;
    let themes = Themes::new(&config.themes_dir)?;
    let mailer = Mailer::new(config, themes, SecretBox::from_key(&[9; 32]));

    let start = Instant::now();
    for i in 0..mails {
        let to = EmailAddress::parse(&format!("bench{i}@example.jp")).unwrap();
        mailer
            .send(&store, &tenant, &to, "test", tera::Context::new())
            .await?;
    }
    let queued = mails as f64 / start.elapsed().as_secs_f64();

    let worker = Worker::new(config, store.clone(), mailer, Arc::new(Metrics::new()))?;
    let start = Instant::now();
    let mut sent = 0;
    while sent < mails {
        sent += worker.round().await?;
    }
    let delivered = mails as f64 / start.elapsed().as_secs_f64();
    let counts = store.mail_counts().await?;
    let daiwa = counts.iter().find(|c| c.tenant == "daiwakenpo").unwrap();
    anyhow::ensure!(daiwa.sent == mails as i64, "not all delivered: {daiwa:?}");
    store.close().await;
    Ok((queued, delivered))
}

/// `n` members of `tenant` with temporary credentials (a login opens their first-login
/// flow); returns each one's user ID and password.
pub async fn members_with_passwords(
    store: &Store,
    config: &Config,
    tenant: &portal::tenant::Tenant,
    n: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let hasher = portal::auth::password::PasswordHasher::new(config)?;
    let email = portal::mail::EmailAddress::parse("bench@example.jp").unwrap();
    let mut members = Vec::new();
    for _ in 0..n {
        let details = portal::member::MemberDetails {
            display_name: "ベンチ",
            birth_date: "1980-01-01",
            email: &email,
        };
        let c = portal::member::create_member(store, &hasher, tenant, &details).await?;
        members.push((c.user_id, c.password));
    }
    Ok(members)
}

/// A member of `tenant` past the first login, signed in; returns the session cookie's
/// value.
pub async fn signed_in_member(
    store: &Store,
    config: &Config,
    tenant: &portal::tenant::Tenant,
) -> anyhow::Result<String> {
    let (user_id, _) = members_with_passwords(store, config, tenant, 1)
        .await?
        .remove(0);
    let member = store
        .member_by_user_id(&tenant.id, &user_id)
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
                user_agent: "bench",
            },
        )
        .await?;
    Ok(token)
}

/// Counts of a login flood.
#[derive(Default)]
pub struct Flood {
    pub done: std::sync::atomic::AtomicU64,
    pub busy: std::sync::atomic::AtomicU64,
    pub stop: std::sync::atomic::AtomicBool,
}

/// One client logging in to `host` on `addr` as `user_id` with the right password again
/// and again until `flood.stop`; every answer is a redirect (303) or "busy" (503).
pub async fn login_loop(
    addr: std::net::SocketAddr,
    host: &str,
    user_id: &str,
    password: &str,
    flood: &Flood,
) {
    use std::sync::atomic::Ordering;
    let base = format!("http://{host}:{}", addr.port());
    let client = reqwest::Client::builder()
        .resolve(host, addr)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = page_token(&client, &format!("{base}/login")).await;
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf_token", &token)
        .append_pair("user_id", user_id)
        .append_pair("password", password)
        .finish();
    while !flood.stop.load(Ordering::Relaxed) {
        let response = client
            .post(format!("{base}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            303 => flood.done.fetch_add(1, Ordering::Relaxed),
            503 => flood.busy.fetch_add(1, Ordering::Relaxed),
            other => panic!("login answered {other}"),
        };
    }
}

/// The configured database, migrated, with the seed tenants, and the tenant daiwakenpo.
pub async fn seeded_store(config: &Config) -> anyhow::Result<(Store, portal::tenant::Tenant)> {
    let store = Store::connect(config).await?;
    store.migrate().await?;
    portal::startup::import_seed_tenants(&store, &config.tenants_dir).await?;
    let tenant = store
        .tenant_by_slug("daiwakenpo")
        .await?
        .expect("seed tenant");
    Ok((store, tenant))
}

/// A configuration whose outbox delivers to `smtp_url` with `concurrency` workers and no
/// per-tenant hourly limit, with its data in `data`.
pub fn mail_config(data: &Path, smtp_url: String, concurrency: u32) -> Config {
    let root = root();
    Config {
        data_dir: data.to_path_buf(),
        themes_dir: root.join("themes"),
        tenants_dir: root.join("tenants"),
        smtp_url: Some(smtp_url),
        mail_concurrency: concurrency,
        mail_tenant_limit_per_hour: u32::MAX,
        ..Config::default()
    }
}

/// GETs `url` with `client` (which keeps the CSRF cookie) and returns its form's token.
pub async fn page_token(client: &reqwest::Client, url: &str) -> String {
    let page = client
        .get(url)
        .send()
        .await
        .expect("the form page")
        .text()
        .await
        .expect("the form page's body");
    form_token(&page)
}

/// The CSRF token of the form on `page`, as the browser decodes the attribute.
pub fn form_token(page: &str) -> String {
    page.split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a form with a token")
        .replace("&#x2F;", "/")
}

/// The median and the 99th percentile of `samples`, in milliseconds.
pub fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.99))
}
