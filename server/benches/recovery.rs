//! Whether the answers to 「ユーザ IDを忘れた方はこちら」 and 「パスワードを忘れた方はこちら」
//! tell anything by their timing: the response time of the POST for input that matches a
//! member and for input that matches nobody, in a shuffled order, through the real server. Prints
//! p50 and p99 of each case and the difference of the medians (it must stay under 5 %).
//!
//!     cargo bench --bench recovery
//!
//! One address may ask 10 times in 15 minutes, so the requests come from 127.0.0.2,
//! 127.0.0.3, … (all loopback), 8 from each, 15 ms apart. (Sent back to back, a request
//! that follows a match waits for the SQLite write lock its mail holds; the work after an
//! unmatched request is a write too, an audit event, to keep the two alike.) A member may
//! be sent 3 reset links in 15 minutes, so the forgot-password requests name 200 members
//! in turn.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use portal::config::Config;
use portal::startup::Application;
use portal::store::Store;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

const PAIRS: usize = 400;
const PER_ADDRESS: usize = 8;
const HOST: &str = "daiwakenpo.localhost";
/// Members the forgot-password requests name in turn.
const RESET_MEMBERS: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// A client from `ip` with the form's CSRF token: (client, token).
async fn client_from(
    ip: IpAddr,
    addr: std::net::SocketAddr,
    path: &str,
) -> (reqwest::Client, String) {
    let client = reqwest::Client::builder()
        .resolve(HOST, addr)
        .local_address(ip)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = support::page_token(&client, &format!("http://{HOST}:{}{path}", addr.port())).await;
    (client, token)
}

/// Response times of `path` for input that matches and that does not, in a shuffled order
/// (fixed seed): each case follows the other as often as itself, so the work one request
/// leaves behind falls on both cases alike. `fields(i, matches)` gives the form of the
/// `i`-th request of its case.
async fn measure(
    addr: std::net::SocketAddr,
    path: &str,
    first_address: &mut u32,
    fields: impl Fn(usize, bool) -> Vec<(&'static str, String)>,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let url = format!("http://{HOST}:{}{path}", addr.port());
    let (mut matching, mut unknown) = (Vec::new(), Vec::new());
    let mut order: Vec<bool> = (0..2 * PAIRS).map(|i| i < PAIRS).collect();
    order.shuffle(&mut StdRng::seed_from_u64(7));
    let mut sent = 0;
    while sent < 2 * PAIRS {
        let ip = IpAddr::V4(Ipv4Addr::from(0x7f00_0000 + *first_address));
        *first_address += 1;
        let (client, token) = client_from(ip, addr, path).await;
        for i in 0..PER_ADDRESS {
            let matches = order[sent + i];
            let nth = if matches {
                matching.len()
            } else {
                unknown.len()
            };
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("csrf_token", &token);
            for (name, value) in fields(nth, matches) {
                form.append_pair(name, &value);
            }
            let body = form.finish();
            let start = Instant::now();
            let response = client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await?;
            let elapsed = start.elapsed();
            assert_eq!(response.status().as_u16(), 303);
            // Requests a little apart, as people send them: the work after one answer
            // is done before the next request comes.
            tokio::time::sleep(Duration::from_millis(15)).await;
            if matches {
                matching.push(elapsed);
            } else {
                unknown.push(elapsed);
            }
        }
        sent += PER_ADDRESS;
    }
    matching.sort();
    unknown.sort();
    Ok((matching, unknown))
}

fn report(title: &str, cases: [&str; 2], (matching, unknown): &(Vec<Duration>, Vec<Duration>)) {
    let (m50, u50) = (percentile(matching, 0.5), percentile(unknown, 0.5));
    println!("{title}, {PAIRS} requests per case, shuffled (ms)");
    println!("| case | p50 | p99 |");
    println!("|---|---:|---:|");
    println!(
        "| {} | {m50:.3} | {:.3} |",
        cases[0],
        percentile(matching, 0.99)
    );
    println!(
        "| {} | {u50:.3} | {:.3} |",
        cases[1],
        percentile(unknown, 0.99)
    );
    println!(
        "difference of the medians: {:.1} %\n",
        (m50 - u50).abs() / u50.min(m50) * 100.0
    );
}

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
    let app = Application::build(config.clone()).await?;
    let addr = app.member_addr;
    tokio::spawn(app.run());
    let store = Store::connect(&config).await?;
    let tenant = store.tenant_by_slug("daiwakenpo").await?.unwrap();
    let hasher = portal::auth::password::PasswordHasher::new(&config)?;
    // Members born the same day; the first 20 share the birth date the user-ID case asks
    // for, and every one is active (a reset link is only sent to active members).
    let mut user_ids = Vec::new();
    for i in 0..RESET_MEMBERS {
        let email = portal::mail::EmailAddress::parse(&format!("m{i}@example.jp")).unwrap();
        let details = portal::member::MemberDetails {
            display_name: "ベンチ",
            birth_date: "1980-01-01",
            email: &email,
        };
        let credentials = portal::member::create_member(&store, &hasher, &tenant, &details).await?;
        let member = store
            .member_by_user_id(&tenant.id, &credentials.user_id)
            .await?
            .unwrap();
        store
            .set_password_hash(&tenant.id, &member.id, &member.password_hash, true)
            .await?;
        user_ids.push(credentials.user_id);
    }

    let mut address = 2u32;
    let user_id_case = measure(addr, "/forgot-user-id", &mut address, |_, matches| {
        let email = if matches {
            "m7@example.jp"
        } else {
            "nobody@example.jp"
        };
        vec![
            ("birth_date", "1980-01-01".to_owned()),
            ("email", email.to_owned()),
        ]
    })
    .await?;
    let password_case = measure(addr, "/forgot-password", &mut address, |i, matches| {
        let user_id = if matches {
            user_ids[i % user_ids.len()].clone()
        } else {
            format!("nobody-{i}")
        };
        vec![("user_id", user_id)]
    })
    .await?;
    report(
        "forgot user ID",
        ["birth date and address match", "nothing matches"],
        &user_id_case,
    );
    report(
        "forgot password",
        ["user ID of an active member", "unknown user ID"],
        &password_case,
    );
    Ok(())
}
