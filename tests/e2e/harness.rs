//! Starts the real `portal` executable against a fresh database and talks to it over HTTP.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Connection;
use tempfile::TempDir;

pub const DAIWA: &str = "大和証券グループ健康保険組合";
pub const KANEKA: &str = "カネカ健康保険組合";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `$test(backend)` once on SQLite and once on PostgreSQL, as two tests.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$test(crate::harness::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if crate::harness::postgres_available() {
                    super::$test(crate::harness::Backend::Postgres).await
                }
            }
        }
    )*};
}
pub(crate) use on_both_backends;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// PostgreSQL tests run when `PORTAL_TEST_PG_URL` names a server; the test command sets it
/// together with `PORTAL_TEST_REQUIRE_PG`, which turns a missing server into a failure.
pub fn postgres_available() -> bool {
    if std::env::var("PORTAL_TEST_PG_URL").is_ok() {
        return true;
    }
    assert!(
        std::env::var("PORTAL_TEST_REQUIRE_PG").is_err(),
        "PORTAL_TEST_REQUIRE_PG is set but PORTAL_TEST_PG_URL is not"
    );
    eprintln!("skipped: PORTAL_TEST_PG_URL is not set (run `bash tests/run`)");
    false
}

/// A database of its own for one test, plus a data folder.
pub struct TestDb {
    pub url: String,
    pub data_dir: TempDir,
    /// The tenant files the server starts with.
    pub tenants_dir: PathBuf,
}

impl TestDb {
    /// A fresh database whose seed tenants walk the first login in the order every
    /// journey test knows ([`classic_tenants`]).
    pub async fn fresh(backend: Backend) -> Self {
        let db = Self::fresh_as_printed(backend).await;
        let dir = db.data_dir.path().join("tenants");
        classic_tenants(&dir);
        Self {
            tenants_dir: dir,
            ..db
        }
    }

    /// A fresh database with the seed tenants exactly as `tenants/` has them: the first
    /// login of each society's printed guide.
    pub async fn fresh_as_printed(backend: Backend) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", data_dir.path().join("portal.db").display()),
            Backend::Postgres => {
                let admin = std::env::var("PORTAL_TEST_PG_URL").unwrap();
                let name = format!("portal_test_{}", portal::random_token(8));
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let base = admin.rsplit_once('/').unwrap().0;
                format!("{base}/{name}")
            }
        };
        Self {
            url,
            data_dir,
            tenants_dir: repo_root().join("tenants"),
        }
    }

    /// `portal <args>` against this database, as an operator would run it.
    pub fn portal(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portal"));
        for (key, _) in std::env::vars() {
            if key.starts_with("PORTAL_") {
                cmd.env_remove(key);
            }
        }
        let root = repo_root();
        cmd.current_dir(self.data_dir.path())
            .env("PORTAL_DATABASE_URL", &self.url)
            .env("PORTAL_DATA_DIR", self.data_dir.path())
            .env("PORTAL_THEMES_DIR", root.join("themes"))
            .env("PORTAL_ADMIN_UI_DIR", root.join("admin-ui"))
            // Tests make the members and admins they need; the demo test turns it on.
            .env("PORTAL_DEMO", "false")
            .env("PORTAL_TENANTS_DIR", &self.tenants_dir)
            .env("PORTAL_LISTEN", "127.0.0.1:0")
            .env("PORTAL_OPS_LISTEN", "127.0.0.1:0")
            .env("PORTAL_TENANT_REFRESH_MS", "100")
            .stdin(Stdio::null());
        if self.url.starts_with("postgres") {
            // Nodes of one cluster share the key; SQLite tests use the generated one.
            cmd.env(
                "PORTAL_SECRET_KEY",
                "dGVzdC1vbmx5LWtleS0tLTMyLWJ5dGVzLWxvbmctLS0=",
            );
        }
        cmd
    }

    /// Runs a CLI command to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.portal().args(args).output().unwrap()
    }

    /// Runs a CLI command with `input` on its standard input.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .portal()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    pub async fn sqlite(&self) -> sqlx::SqliteConnection {
        sqlx::SqliteConnection::connect(&self.url).await.unwrap()
    }

    pub async fn postgres(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url).await.unwrap()
    }
}

/// Writes the seed tenant files into `dir` with the first login of before the guides'
/// orders: 生年月日, 利用規約, user ID and method on one screen, password, e-mail (and its
/// link where the society confirms it), and the factor set up at once.
pub fn classic_tenants(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(repo_root().join("tenants")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text
            .find("[first_login]\n")
            .expect("a [first_login] section");
        let end = start + text[start..].find("\n[").expect("a section after it") + 1;
        let link = if text[start..end].contains("\"email_link\"") {
            ", \"email_link\""
        } else {
            ""
        };
        let classic = format!(
            "[first_login]\nsteps = [\"birth_date\", \"terms\", \"user_id+method\", \"password\", \"email\"{link}]\nfactor_setup = \"now\"\n\n"
        );
        let out = format!("{}{classic}{}", &text[..start], &text[end..]);
        std::fs::write(dir.join(path.file_name().unwrap()), out).unwrap();
    }
}

/// A running `portal serve`.
pub struct TestApp {
    pub member: SocketAddr,
    pub ops: SocketAddr,
    pub db: Arc<TestDb>,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_on(TestDb::fresh(backend).await, |_| {})
    }

    /// Starts the server on `db`, after `adjust` had its say on the command.
    pub fn spawn_on(db: impl Into<Arc<TestDb>>, adjust: impl FnOnce(&mut Command)) -> Self {
        let db = db.into();
        let mut cmd = db.portal();
        cmd.arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        adjust(&mut cmd);
        let (child, log, (member, ops)) = start(cmd);
        Self {
            member,
            ops,
            db,
            child,
            log,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// GET `path` on the member listener with the given `Host` header.
    pub async fn get(&self, host: &str, path: &str) -> Page {
        self.get_at(self.member, host, path).await
    }

    pub async fn get_at(&self, addr: SocketAddr, host: &str, path: &str) -> Page {
        let response = self
            .http
            .get(format!("http://{addr}{path}"))
            .header("Host", host)
            .send()
            .await
            .unwrap();
        Page::read(response).await
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The server's process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to end by itself; its exit status.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    /// Ends the process at once (SIGKILL), as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd`, keeps reading its standard error, and waits for the line that reports
/// the bound addresses.
pub fn start(mut cmd: Command) -> (Child, Arc<Mutex<Vec<String>>>, (SocketAddr, SocketAddr)) {
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addrs) = parse_listening(&line) {
                let _ = tx.send(addrs);
            }
            sink.lock().unwrap().push(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(addrs) = rx.recv_timeout(Duration::from_millis(50)) {
            return (child, log, addrs);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "portal exited with {status}:\n{}",
                log.lock().unwrap().join("\n")
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("portal did not start:\n{}", log.lock().unwrap().join("\n"));
        }
    }
}

fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.split("listening member=").nth(1)?;
    let (member, rest) = rest.split_once(" ops=")?;
    // Text logs end the line there; JSON logs close the string.
    let ops: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || ".:[]".contains(*c))
        .collect();
    Some((member.parse().ok()?, ops.parse().ok()?))
}

/// A response as a test looks at it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    async fn read(response: reqwest::Response) -> Self {
        Self {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Sends `request` as raw bytes and returns the status code and the whole response, for
/// requests an HTTP client library would not send (no `Host` header, say).
pub async fn raw_request(addr: SocketAddr, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real SMTP server process (tests/smtp/server.py) that stores what it accepts.
pub struct SmtpServer {
    pub port: u16,
    pub dir: Arc<TempDir>,
    child: Child,
}

impl SmtpServer {
    pub fn start(port: u16) -> Self {
        Self::start_with(port, Arc::new(tempfile::tempdir().unwrap()), 0.0)
    }

    /// Starts on `port`, storing into `dir`, each RCPT delayed by `rcpt_delay` seconds.
    pub fn start_with(port: u16, dir: Arc<TempDir>, rcpt_delay: f64) -> Self {
        let python = std::env::var("PORTAL_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(python)
            .arg(repo_root().join("tests/smtp/server.py"))
            .args(["--port", &port.to_string(), "--dir"])
            .arg(dir.path())
            .args(["--rcpt-delay", &rcpt_delay.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting tests/smtp/server.py (pip install -r tests/smtp/requirements.txt)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("listening"),
            "SMTP server did not start: {line:?}"
        );
        Self { port, dir, child }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, oldest first, as raw text.
    pub fn messages(&self) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|p| String::from_utf8(std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
