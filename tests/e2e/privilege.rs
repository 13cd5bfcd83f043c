//! Privilege that ends when its grant ends, on the member side and in the throttles: the
//! step-up (`/reauth`) clears failed sign-ins only when it succeeds in full and shares the
//! sign-in's per-address throttle; a one-time password from another time at sign-in is
//! refused like any wrong one (the measured clock offset only while registering an app);
//! an IPv6 client is throttled by its /64; a member's sign-in codes have a mail budget of
//! their own. The admin side is in `privilege_admins`, settings, letters and uploads in
//! `privilege_content`.

use std::sync::Arc;

use crate::admin::signed_in_admin;
use crate::browser_like::{
    add_some_member, fresh_password, fresh_user_id, host_of, login_ok, walk_first_login_to,
    without_csrf_tokens, Browser, DAIWA_HOST,
};
use crate::db::{exec, member_id, Arg};
use crate::harness::{free_port, on_both_backends, Backend, SmtpServer, TestApp, TestDb};
use crate::otp::{oathtool, shown_key};

on_both_backends!(
    step_up_clears_failures_only_when_the_second_factor_is_proven_too,
    step_up_shares_the_sign_in_throttle_of_the_address,
    a_code_from_another_time_is_refused_like_any_wrong_code,
    throttles_count_an_ipv6_network_as_one_client,
    the_console_sign_in_throttles_an_ipv6_network_as_one_client,
    reset_requests_never_use_up_the_budget_of_sign_in_codes,
);

const WRONG: &str = "ワンタイムパスワードが正しくありません";
/// The clock advice every wrong code carries (FAQ Q9).
const CLOCK_ADVICE: &str = "時刻の自動補正";
const LOCKED: &str = "アカウントがロックされています。";

/// A member with an app, signed in with password and code in `b`.
async fn signed_in_with_app(app: &TestApp) -> (Browser, crate::totp::AppMember) {
    let m = crate::totp::member_with_app(app).await;
    let b = Browser::new(app, &host_of("daiwakenpo"));
    let next = login_ok(&b, &m.user_id, &m.password).await;
    assert!(next.is_see_other("/login/factor"), "{}", next.summary());
    let done = b
        .fill("/login/otp", &[("code", &oathtool(&m.key, 30))])
        .await;
    assert!(done.is_see_other("/login/next"), "{}", done.summary());
    assert!(b.follow(done).await.is_see_other("/"));
    (b, m)
}

async fn step_up_clears_failures_only_when_the_second_factor_is_proven_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (b, m) = signed_in_with_app(&app).await;
    let id = member_id(&app.db, "daiwakenpo", &m.user_id).await;
    // The last authentication is old: adding a factor asks for the step-up.
    exec(
        &app.db,
        "UPDATE sessions SET authenticated_at = authenticated_at - 3600 WHERE member_id = $1",
        &[Arg::Text(&id)],
    )
    .await;
    let add = "/login-methods/add/passkey";
    // Someone holding the session and the password guesses codes: the right password
    // each time no longer wipes the count, so daiwakenpo's five wrong codes lock it.
    for attempt in 1..=5 {
        let gate = b.get(add).await;
        assert!(gate.location.starts_with("/reauth"), "{}", gate.summary());
        let page = b.follow(gate).await;
        assert_eq!(page.status, 200, "{}", page.summary());
        let password = b
            .post(
                "/reauth",
                &[
                    ("password", &m.password),
                    ("return_to", add),
                    ("csrf_token", &page.csrf_token()),
                ],
            )
            .await;
        assert!(
            password.is_see_other("/login/next"),
            "attempt {attempt}: {}",
            password.summary()
        );
        assert!(b.get("/login/next").await.is_see_other("/login/factor"));
        assert!(b.get("/login/factor").await.is_see_other("/login/otp"));
        let wrong = b.fill("/login/otp", &[("code", "000000")]).await;
        if attempt < 5 {
            assert!(wrong.body.contains(WRONG), "{}", wrong.summary());
        }
    }
    let other = Browser::new(&app, &host_of("daiwakenpo"));
    let r = other
        .fill(
            "/login",
            &[("user_id", &m.user_id), ("password", &m.password)],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.summary());
    assert!(r.body.contains(LOCKED), "{}", r.summary());
    // And the stolen session ends with the lock.
    assert!(!b.get("/").await.body.contains(&m.letter.name));
}

async fn step_up_shares_the_sign_in_throttle_of_the_address(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (b, m) = signed_in_with_app(&app).await;
    let id = member_id(&app.db, "daiwakenpo", &m.user_id).await;
    exec(
        &app.db,
        "UPDATE sessions SET authenticated_at = authenticated_at - 3600 WHERE member_id = $1",
        &[Arg::Text(&id)],
    )
    .await;
    // The address has used up its sign-in failures on unknown user IDs …
    let guesser = Browser::new(&app, &host_of("daiwakenpo"));
    let mut throttled = false;
    for i in 0..40 {
        let r = guesser
            .fill(
                "/login",
                &[
                    ("user_id", &format!("nobody{i}")),
                    ("password", "Wrong-pass-1"),
                ],
            )
            .await;
        if r.status == 429 {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "the sign-in form throttles the address");
    // … so the step-up from the same address is refused before any password check.
    let add = "/login-methods/add/passkey";
    let page = b.follow(b.get(add).await).await;
    assert_eq!(page.status, 200, "{}", page.summary());
    let r = b
        .post(
            "/reauth",
            &[
                ("password", &m.password),
                ("return_to", add),
                ("csrf_token", &page.csrf_token()),
            ],
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.summary());
    assert!(
        r.text().contains("しばらくご利用いただけません"),
        "{}",
        r.summary()
    );
}

async fn a_code_from_another_time_is_refused_like_any_wrong_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    // Registering an app: the member has just been shown the key, so the page tells how
    // far off the phone's clock is.
    let letter = add_some_member(&app.db, "daiwakenpo");
    let b = Browser::new(&app, &host_of("daiwakenpo"));
    let (user_id, password) = (fresh_user_id(), fresh_password());
    let next = walk_first_login_to(&b, &letter, &user_id, &password, "totp").await;
    assert!(next.is_see_other("/login/totp"), "{}", next.summary());
    let key = shown_key(&b.get("/login/totp").await);
    let off = b
        .fill(
            "/login/totp",
            &[("device_name", "iPhone"), ("code", &oathtool(&key, 300))],
        )
        .await;
    assert!(off.body.contains("時刻が約"), "{}", off.summary());
    let done = b
        .fill(
            "/login/totp",
            &[("device_name", "iPhone"), ("code", &oathtool(&key, 0))],
        )
        .await;
    assert!(done.is_see_other("/login/next"), "{}", done.summary());
    assert!(b.follow(b.follow(done).await).await.status == 200);

    // Signing in: a code five minutes ahead and a code that was never right get the very
    // same page, which carries the clock advice and no offset.
    let c = Browser::new(&app, &host_of("daiwakenpo"));
    login_ok(&c, &user_id.to_lowercase(), &password).await;
    let ahead = c
        .fill("/login/otp", &[("code", &oathtool(&key, 300))])
        .await;
    let never = c.fill("/login/otp", &[("code", "000000")]).await;
    for r in [&ahead, &never] {
        assert_eq!(r.status, 200, "{}", r.summary());
        assert!(r.body.contains(WRONG), "{}", r.summary());
        assert!(r.body.contains(CLOCK_ADVICE), "{}", r.summary());
        assert!(!r.body.contains("時刻が約"), "{}", r.summary());
    }
    assert_eq!(
        without_csrf_tokens(&ahead.body),
        without_csrf_tokens(&never.body)
    );

    // The console's sign-in says the same to admins.
    let (admin, app_key) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "drift@daiwa.example.jp",
        "admin",
    )
    .await;
    let dashboard = admin.get("/admin/").await;
    admin
        .post("/admin/logout", &[("csrf_token", &dashboard.csrf_token())])
        .await;
    let form = admin.get("/admin/login").await;
    let next = admin
        .post(
            "/admin/login",
            &[
                ("email", "drift@daiwa.example.jp"),
                ("password", "Console-pass-2026!"),
                ("csrf_token", &form.csrf_token()),
            ],
        )
        .await;
    assert!(next.is_see_other("/admin/login/next"), "{}", next.summary());
    let page = admin.get("/admin/login/otp").await;
    assert_eq!(page.status, 200, "{}", page.summary());
    let ahead = admin
        .post(
            "/admin/login/otp",
            &[
                ("code", &oathtool(&app_key, 300)),
                ("csrf_token", &page.csrf_token()),
            ],
        )
        .await;
    let never = admin
        .post(
            "/admin/login/otp",
            &[("code", "000000"), ("csrf_token", &page.csrf_token())],
        )
        .await;
    for r in [&ahead, &never] {
        assert!(r.body.contains(WRONG), "{}", r.summary());
        assert!(r.body.contains(CLOCK_ADVICE), "{}", r.summary());
        assert!(!r.body.contains("秒ずれています"), "{}", r.summary());
    }
    assert_eq!(
        without_csrf_tokens(&ahead.body),
        without_csrf_tokens(&never.body)
    );
}

/// A failed sign-in of an unknown user ID from `client` (as the trusted proxy reports
/// it): the status.
async fn failed_login_from(b: &Browser, token: &str, client: &str, i: usize) -> u16 {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("user_id", &format!("nobody{i}"))
        .append_pair("password", "Wrong-pass-1")
        .append_pair("csrf_token", token)
        .finish();
    b.client
        .post(b.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", client)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn throttles_count_an_ipv6_network_as_one_client(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let app = TestApp::spawn_on(db, |cmd| {
        cmd.env("PORTAL_TRUSTED_PROXIES", "127.0.0.1");
    });
    let b = Browser::new(&app, &host_of("daiwakenpo"));
    let token = b.token().await;
    // 30 failures, each from another address of one /64: the network has used its 30.
    for i in 0..30 {
        let client = format!("2001:db8:1:2::{:x}", i + 1);
        assert_eq!(failed_login_from(&b, &token, &client, i).await, 200);
    }
    assert_eq!(
        failed_login_from(&b, &token, "2001:db8:1:2:ffff:ffff:ffff:fffe", 30).await,
        429
    );
    // The neighbouring /64 and an IPv4 client are clients of their own.
    assert_eq!(
        failed_login_from(&b, &token, "2001:db8:1:3::1", 31).await,
        200
    );
    assert_eq!(failed_login_from(&b, &token, "192.0.2.10", 32).await, 200);
    drop(app);

    // PORTAL_THROTTLE_IPV6_PREFIX=128 counts each address by itself.
    let db = TestDb::fresh(backend).await;
    let app = TestApp::spawn_on(db, |cmd| {
        cmd.env("PORTAL_TRUSTED_PROXIES", "127.0.0.1")
            .env("PORTAL_THROTTLE_IPV6_PREFIX", "128");
    });
    let b = Browser::new(&app, &host_of("daiwakenpo"));
    let token = b.token().await;
    for i in 0..31 {
        let client = format!("2001:db8:1:2::{:x}", i + 1);
        assert_eq!(failed_login_from(&b, &token, &client, i).await, 200);
    }
}

async fn the_console_sign_in_throttles_an_ipv6_network_as_one_client(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let app = TestApp::spawn_on(db, |cmd| {
        cmd.env("PORTAL_TRUSTED_PROXIES", "127.0.0.1");
    });
    let b = Browser::new(&app, DAIWA_HOST);
    let token = b.get("/admin/login").await.csrf_token();
    let attempt = |client: String, i: usize| {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("email", &format!("nobody{i}@daiwa.example.jp"))
            .append_pair("password", "Wrong-pass-2026!")
            .append_pair("csrf_token", &token)
            .finish();
        let request = b
            .client
            .post(b.url("/admin/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-forwarded-for", client)
            .body(body);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // 20 failures from addresses of one /64, then the network is refused …
    for i in 0..20 {
        assert_eq!(attempt(format!("2001:db8:9:9::{:x}", i + 1), i).await, 200);
    }
    assert_eq!(attempt("2001:db8:9:9::abcd".into(), 20).await, 429);
    // … while another network still gets its own 20.
    assert_eq!(attempt("2001:db8:9:a::1".into(), 21).await, 200);
}

async fn reset_requests_never_use_up_the_budget_of_sign_in_codes(backend: Backend) {
    let smtp = SmtpServer::start(free_port());
    let db = Arc::new(TestDb::fresh(backend).await);
    let url = smtp.url();
    // Four mails an hour per address and budget: the first login already sent the
    // confirmation link and the factor notice (two of the other budget) and one code.
    let app = TestApp::spawn_on(Arc::clone(&db), move |cmd| {
        cmd.env("PORTAL_SMTP_URL", url)
            .env("PORTAL_MAIL_POLL_MS", "100")
            .env("PORTAL_MAIL_RECIPIENT_LIMIT_PER_HOUR", "4");
    });
    let (letter, user_id, password) = crate::factors::email_member(&app, &smtp).await;
    // Reset requests use up the other budget (the mail of the third one is refused; with
    // one budget for all, the second one's would be, and so would the next code) …
    let b = Browser::new(&app, &host_of("kanekakenpo"));
    for _ in 0..3 {
        let r = b.fill("/forgot-password", &[("user_id", &user_id)]).await;
        assert!(r.status < 500, "{}", r.summary());
    }
    // (Reset requests are answered at once and mailed by a worker: wait for it.)
    let full = crate::harness::eventually(std::time::Duration::from_secs(10), || async {
        crate::db::count(
            &db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM mail_outbox WHERE recipient = $1 \
             AND template <> 'email_otp'",
            &[Arg::Text(&letter.email)],
        )
        .await
            >= 3
    })
    .await;
    assert!(full, "the reset mails are queued");
    // … and the member's next sign-in code still goes out.
    let c = Browser::new(&app, &host_of("kanekakenpo"));
    let next = login_ok(&c, &user_id, &password).await;
    assert!(next.is_see_other("/login/factor"), "{}", next.summary());
    assert!(c
        .get("/login/factor")
        .await
        .is_see_other("/login/email-otp"));
    let page = c.get("/login/email-otp").await;
    assert_eq!(page.status, 200, "{}", page.summary());
    let code = crate::factors::mailed_code(&smtp, &letter.email, 2).await;
    let done = c.fill("/login/email-otp", &[("code", &code)]).await;
    assert!(done.is_see_other("/login/next"), "{}", done.summary());
}
