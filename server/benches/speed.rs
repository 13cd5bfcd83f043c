//! Speed where members feel it, in one run:
//!
//! 1. the logged-out and the signed-in top page of daiwakenpo, served by the release server
//!    in its own process, against a bare poem handler (this benchmark's own binary in a
//!    second process, on a runtime built the same way) answering a body of the same bytes;
//!    both loaded by `wrk -t2 -c32` for 5 s, in turns, three rounds (the median ratio and
//!    the range of the rounds' ratios are printed);
//! 2. both top pages read every 5 ms by one client, alone and while a password-login flood
//!    runs from a separate process (this binary again, 16 clients logging in with the right
//!    password);
//! 3. mail delivered per second by the outbox worker to the local SMTP server
//!    (`tests/smtp/server.py`) at concurrency 1 and 16.
//!
//! The node logs at its default level (`info`, one access-log line per request), as in
//! production. Needs `wrk` (Debian: `apt install wrk`) and a Python with aiosmtpd:
//!
//!     PORTAL_TEST_PYTHON=target/pyenv/bin/python cargo bench --bench speed
//!
//! With `PORTAL_SPEED_HOLD=1` it only sets the node up, prints its process id, address and
//! a signed-in member's cookie, and keeps it running until Enter: the set-up for a profiler
//! (see docs/benchmarks.md).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portal::config::Config;
use portal::store::Store;

const HOST: &str = "daiwakenpo.localhost";
const WRK_SECONDS: u32 = 5;
/// Turns of portal and bare handler; the machine is noisy, so each ratio is a median.
const ROUNDS: usize = 3;
const FLOOD_CLIENTS: usize = 16;
const READS: usize = 2000;
const READ_INTERVAL: Duration = Duration::from_millis(5);
const MAILS: usize = 500;
/// Which part of the benchmark this process plays: unset (the benchmark), `bare` (the
/// bare poem server) or `flood` (the login flood).
const ROLE: &str = "PORTAL_SPEED_ROLE";

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match std::env::var(ROLE).as_deref() {
        Ok("bare") => runtime.block_on(bare_server()),
        Ok("flood") => runtime.block_on(flood()),
        _ => runtime.block_on(bench()),
    }
}

async fn bench() -> anyhow::Result<()> {
    let Ok(version) = Command::new("wrk").arg("--version").output() else {
        anyhow::bail!("wrk is missing (Debian: apt install wrk)");
    };
    let wrk_version = String::from_utf8_lossy(&version.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    let root = support::root();
    let data = tempfile::tempdir()?;
    let url = format!("sqlite://{}", data.path().join("portal.db").display());
    let config = Config {
        database_url: Some(url.clone()),
        data_dir: data.path().to_path_buf(),
        themes_dir: root.join("themes"),
        tenants_dir: root.join("tenants"),
        secret_key: Some(support::SECRET_KEY.to_owned()),
        ..Config::default()
    };
    let (store, tenant) = support::seeded_store(&config).await?;
    let logins = support::members_with_passwords(&store, &config, &tenant, FLOOD_CLIENTS).await?;
    let session = support::signed_in_member(&store, &config, &tenant).await?;
    store.close().await;

    let node = support::Node::start(
        &url,
        data.path(),
        &std::env::var("PORTAL_SPEED_LOG").unwrap_or("info".into()),
    )?;
    node.ready().await?;
    let cookie = format!("portal_session={session}");
    let http = reqwest::Client::builder()
        .resolve(HOST, node.member)
        .build()?;
    let page = |cookie: Option<String>| {
        let http = http.clone();
        let url = format!("http://{HOST}:{}/", node.member.port());
        async move {
            let mut request = http.get(url);
            if let Some(cookie) = cookie {
                request = request.header("cookie", cookie);
            }
            let response = request.send().await.expect("top page");
            assert_eq!(response.status(), 200);
            response.bytes().await.expect("body")
        }
    };
    let logged_out = page(None).await;
    let signed_in = page(Some(cookie.clone())).await;
    anyhow::ensure!(
        String::from_utf8_lossy(&logged_out).contains("ログイン"),
        "not the logged-out top page"
    );
    anyhow::ensure!(
        String::from_utf8_lossy(&signed_in).contains("サービスメニュー"),
        "not the signed-in top page"
    );

    if std::env::var_os("PORTAL_SPEED_HOLD").is_some() {
        // For a profiler: the node stays up, as set up here, until Enter.
        eprintln!(
            "node pid {} on http://{} (Host: {HOST}); signed in: Cookie: {cookie}; Enter ends",
            node.pid(),
            node.member
        );
        std::io::stdin().read_line(&mut String::new())?;
        return Ok(());
    }

    // The bare handler answers the very same bytes; on `/signed-in-db` it first reads the
    // session and its member through the portal's own query, from the node's database.
    let pages = tempfile::tempdir()?;
    std::fs::write(pages.path().join("logged-out"), &logged_out)?;
    std::fs::write(pages.path().join("signed-in"), &signed_in)?;
    let token_hash = portal::auth::session::token_hash(&session);
    let bare = Helper::start(
        "bare",
        &[
            ("PORTAL_SPEED_PAGES", pages.path()),
            ("PORTAL_SPEED_DB", Path::new(&url)),
            ("PORTAL_SPEED_TENANT", Path::new(tenant.id.as_str())),
            ("PORTAL_SPEED_SESSION", Path::new(&token_hash)),
        ],
    )?;
    let bare_addr = bare.first_line.trim().to_owned();

    let portal_url = format!("http://{}/", node.member);
    let host = format!("Host: {HOST}");
    let cookie_header = format!("Cookie: {cookie}");
    // Both servers warm, then measured in turns.
    wrk(&portal_url, &[&host], 2)?;
    wrk(&format!("http://{bare_addr}/logged-out"), &[], 2)?;
    let bare_page = |path: &str| wrk(&format!("http://{bare_addr}/{path}"), &[], WRK_SECONDS);
    let (mut logged_out_pairs, mut signed_in_pairs, mut session_pairs) =
        (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let bare_logged_out = bare_page("logged-out")?;
        let portal_logged_out = wrk(&portal_url, &[&host], WRK_SECONDS)?;
        logged_out_pairs.push((portal_logged_out, bare_logged_out));
        let bare_signed_in = bare_page("signed-in")?;
        let portal_signed_in = wrk(&portal_url, &[&host, &cookie_header], WRK_SECONDS)?;
        let bare_with_session = bare_page("signed-in-db")?;
        signed_in_pairs.push((portal_signed_in.clone(), bare_signed_in));
        session_pairs.push((portal_signed_in, bare_with_session));
    }
    let rows = [
        (
            format!("logged-out top page ({} bytes)", logged_out.len()),
            logged_out_pairs,
        ),
        (
            format!("signed-in top page ({} bytes)", signed_in.len()),
            signed_in_pairs,
        ),
        (
            "signed-in top page, against a bare handler that also reads the session".to_owned(),
            session_pairs,
        ),
    ]
    .map(|(name, pairs)| row(&name, &pairs));
    drop(bare);

    // The top pages read every READ_INTERVAL, alone and during a login flood from another
    // process.
    let read = |cookie: Option<String>| {
        let page = &page;
        async move {
            let mut samples = Vec::with_capacity(READS);
            let mut tick = tokio::time::interval(READ_INTERVAL);
            for _ in 0..READS {
                tick.tick().await;
                let start = Instant::now();
                page(cookie.clone()).await;
                samples.push(start.elapsed());
            }
            support::percentiles(&mut samples)
        }
    };
    let alone = [read(None).await, read(Some(cookie.clone())).await];
    let logins_file = data.path().join("logins.tsv");
    std::fs::write(
        &logins_file,
        logins
            .iter()
            .map(|(user_id, password)| format!("{user_id}\t{password}\n"))
            .collect::<String>(),
    )?;
    let member_addr = node.member.to_string();
    let mut flood = Helper::start(
        "flood",
        &[
            ("PORTAL_SPEED_LOGINS", logins_file.as_path()),
            ("PORTAL_SPEED_ADDR", Path::new(&member_addr)),
        ],
    )?;
    tokio::time::sleep(Duration::from_secs(1)).await; // let the flood build up
    let flooded = [read(None).await, read(Some(cookie.clone())).await];
    let logins = flood.finish()?;

    // Mail through the outbox to a local SMTP server.
    let smtp = support::SmtpServer::start()?;
    let mut mail = Vec::new();
    for concurrency in [1u32, 16] {
        let data = tempfile::tempdir()?;
        let config = support::mail_config(data.path(), smtp.url(), concurrency);
        let (_, delivered) = support::mails_per_second(&config, MAILS).await?;
        mail.push(format!("| {concurrency} | {delivered:.0} |"));
    }
    drop(smtp);

    println!(
        "{} cores; load: {wrk_version}, -t2 -c32, {WRK_SECONDS} s a run, portal and bare \
         handler in turns, {ROUNDS} rounds; medians, and the rounds' ratios from lowest to \
         highest",
        std::thread::available_parallelism()?.get()
    );
    println!();
    println!("| page | portal | bare poem handler, same body | portal ÷ bare | rounds' ratios |");
    println!("|---|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    println!();
    println!(
        "One client reading every {} ms, {READS} reads a row; the flood: {FLOOD_CLIENTS} clients \
         in another process logging in with the right password ({logins}).",
        READ_INTERVAL.as_millis()
    );
    println!();
    println!(
        "| page | p50 / p99 alone (ms) | p50 / p99 during the flood (ms) | p99 flood ÷ alone |"
    );
    println!("|---|---:|---:|---:|");
    for (i, name) in ["logged-out top page", "signed-in top page"]
        .iter()
        .enumerate()
    {
        let ((p50a, p99a), (p50f, p99f)) = (alone[i], flooded[i]);
        println!(
            "| {name} | {p50a:.2} / {p99a:.2} | {p50f:.2} / {p99f:.2} | {:.2} |",
            p99f / p99a
        );
    }
    println!();
    println!("{MAILS} mails a row, one outbox worker, aiosmtpd on loopback:");
    println!();
    println!("| concurrency | delivered/s |");
    println!("|---:|---:|");
    for row in mail {
        println!("{row}");
    }
    Ok(())
}

#[derive(Clone)]
struct Wrk {
    rate: f64,
    p99_ms: f64,
}

/// A table row from rounds of (portal, bare handler) runs: median rates and p99s, the
/// median ratio and each round's ratio.
fn row(name: &str, pairs: &[(Wrk, Wrk)]) -> String {
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let of = |pick: fn(&(Wrk, Wrk)) -> f64| median(pairs.iter().map(pick).collect());
    let mut ratios: Vec<f64> = pairs.iter().map(|(p, b)| p.rate / b.rate).collect();
    ratios.sort_by(f64::total_cmp);
    let middle = ratios[ratios.len() / 2];
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    format!(
        "| {name} | {:.0} req/s, p99 {:.2} ms | {:.0} req/s, p99 {:.2} ms | {:.2} | {} |",
        of(|(p, _)| p.rate),
        of(|(p, _)| p.p99_ms),
        of(|(_, b)| b.rate),
        of(|(_, b)| b.p99_ms),
        middle,
        each.join(" / ")
    )
}

/// `wrk -t2 -c32` on `url` for `seconds`; every answer must be a 2xx.
fn wrk(url: &str, headers: &[&str], seconds: u32) -> anyhow::Result<Wrk> {
    let mut command = Command::new("wrk");
    command.args(["-t2", "-c32", "--latency", &format!("-d{seconds}s")]);
    for header in headers {
        command.args(["-H", header]);
    }
    let out = command.arg(url).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "wrk failed: {text}");
    anyhow::ensure!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "{url}: {text}"
    );
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no rate in {text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| v.trim())
        .ok_or_else(|| anyhow::anyhow!("no p99 in {text}"))?;
    Ok(Wrk {
        rate,
        p99_ms: milliseconds(p99)?,
    })
}

/// wrk's "812.00us", "3.45ms" or "1.02s".
fn milliseconds(value: &str) -> anyhow::Result<f64> {
    let (number, scale) = if let Some(n) = value.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1000.0)
    } else {
        anyhow::bail!("latency {value}")
    };
    Ok(number.parse::<f64>()? * scale)
}

/// This binary started again in another role; its first line of output is kept.
struct Helper {
    child: Child,
    first_line: String,
}

impl Helper {
    fn start(role: &str, env: &[(&str, &Path)]) -> anyhow::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn()?;
        let mut first_line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut first_line)?;
        anyhow::ensure!(!first_line.is_empty(), "{role} did not start");
        Ok(Self { child, first_line })
    }

    /// Closes the helper's input (its signal to stop) and returns what it printed after
    /// its first line.
    fn finish(&mut self) -> anyhow::Result<String> {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut rest)?;
        self.child.wait()?;
        Ok(rest.trim().to_owned())
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The floor: poem on the same runtime, answering a fixed page with nothing around it.
async fn bare_server() -> anyhow::Result<()> {
    use poem::listener::{Acceptor, Listener};
    let dir = std::path::PathBuf::from(std::env::var("PORTAL_SPEED_PAGES")?);
    let mut route = poem::Route::new();
    for name in ["logged-out", "signed-in"] {
        let body = poem::web::Html(String::from_utf8(std::fs::read(dir.join(name))?)?);
        route = route.at(
            format!("/{name}"),
            poem::endpoint::make_sync(move |_| body.clone()),
        );
    }
    // The floor of a page that must find its session in the database on every request:
    // the portal's own session query (same pool settings), then the same bytes.
    let store = Store::connect(&Config {
        database_url: Some(std::env::var("PORTAL_SPEED_DB")?),
        ..Config::default()
    })
    .await?;
    let tenant = portal::tenant::TenantId::from_db(std::env::var("PORTAL_SPEED_TENANT")?);
    let session = std::env::var("PORTAL_SPEED_SESSION")?;
    let body = poem::web::Html(String::from_utf8(std::fs::read(dir.join("signed-in"))?)?);
    let read = Arc::new((store, tenant, session, body));
    route = route.at(
        "/signed-in-db",
        poem::endpoint::make(move |_| {
            let read = Arc::clone(&read);
            async move {
                let (store, tenant, session, body) = &*read;
                match store.session_with_member(tenant, session).await {
                    Ok(Some(_)) => Ok(body.clone()),
                    _ => Err(poem::Error::from_status(
                        poem::http::StatusCode::INTERNAL_SERVER_ERROR,
                    )),
                }
            }
        }),
    );
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await?;
    let addr = acceptor.local_addr().remove(0);
    println!("{}", addr.as_socket_addr().expect("a TCP address"));
    std::io::stdout().flush()?;
    poem::Server::new_with_acceptor(acceptor).run(route).await?;
    Ok(())
}

/// The flood: every member of `PORTAL_SPEED_LOGINS` logs in again and again until this
/// process's input closes; then prints the logins per second.
async fn flood() -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = std::env::var("PORTAL_SPEED_ADDR")?.parse()?;
    let logins = std::fs::read_to_string(std::env::var("PORTAL_SPEED_LOGINS")?)?;
    let counts = Arc::new(support::Flood::default());
    let mut clients = Vec::new();
    for line in logins.lines() {
        let (user_id, password) = line.split_once('\t').unwrap();
        let (user_id, password) = (user_id.to_owned(), password.to_owned());
        let counts = Arc::clone(&counts);
        clients.push(tokio::spawn(async move {
            support::login_loop(addr, HOST, &user_id, &password, &counts).await;
        }));
    }
    println!("flooding");
    std::io::stdout().flush()?;
    let start = Instant::now();
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await?;
    counts.stop.store(true, Ordering::Relaxed);
    let seconds = start.elapsed().as_secs_f64();
    for client in clients {
        client.await?;
    }
    println!(
        "{:.1} logins/s, {} answered busy",
        counts.done.load(Ordering::Relaxed) as f64 / seconds,
        counts.busy.load(Ordering::Relaxed)
    );
    Ok(())
}
