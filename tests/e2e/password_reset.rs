//! A forgotten password (manual §3-3) read from the mail a real SMTP server received:
//! 「パスワードを忘れた方はこちら」 → 「ユーザ ID」 → 「実行」 → the same answer for every ID →
//! the 「パスワードをリセット」 link, which works once, on its own society's host only,
//! until a newer link or a sign-in voids it or its lifetime ends. Where the society resets
//! factors with the password (daiwakenpo), the link leads to a new authenticator app that
//! replaces the old one; elsewhere (kanekakenpo) the member passes the factor they hold.

use std::sync::Arc;
use std::time::Duration;

use crate::browser_like::{
    add_some_member, fresh_password, fresh_user_id, host_of, login, login_ok, text_for,
    walk_first_login_to, without_csrf_tokens, Browser, Reply,
};
use crate::db::{count, exec, member_id, value, Arg};
use crate::harness::{
    eventually, free_port, on_both_backends, stderr, Backend, SmtpServer, TestApp, TestDb,
};
use crate::otp::{oathtool, shown_key};

on_both_backends!(
    a_reset_link_replaces_the_app_and_works_once,
    a_reset_keeps_the_factor_the_member_holds_and_asks_for_it,
    reset_links_expire_with_the_lifetime_of_the_tenant_file,
);

/// A member past the first login with an authenticator app, signed in in `browser`.
pub struct AppMember {
    pub email: String,
    pub name: String,
    pub user_id: String,
    pub password: String,
    pub key: String,
    pub browser: Browser,
}

/// A server that sends mail to `smtp`, on `db`.
pub fn app_with_smtp(db: Arc<TestDb>, smtp: &SmtpServer) -> TestApp {
    let url = smtp.url();
    TestApp::spawn_on(db, move |cmd| {
        cmd.env("PORTAL_SMTP_URL", url)
            .env("PORTAL_MAIL_POLL_MS", "100");
    })
}

pub async fn member_with_app(app: &TestApp, smtp: &SmtpServer, slug: &str) -> AppMember {
    let letter = add_some_member(&app.db, slug);
    let b = Browser::new(app, &host_of(slug));
    let (user_id, password) = (fresh_user_id(), fresh_password());
    let next = walk_first_login_to(&b, &letter, &user_id, &password, "totp").await;
    let next = if next.is_see_other("/login/email/confirm") {
        // kanekakenpo 【6】【7】: the confirmation link from the mail, then on.
        let mail = mails(smtp, &letter.email, "確認", 1).await;
        let link = mail[0]
            .split_whitespace()
            .find(|w| w.contains("/email/confirm?token="))
            .expect("a confirmation link")
            .to_owned();
        assert_eq!(b.get(&link).await.status, 200);
        b.get("/login/next").await
    } else {
        next
    };
    assert!(next.is_see_other("/login/totp"), "{}", next.summary());
    let key = shown_key(&b.get("/login/totp").await);
    let done = b
        .fill(
            "/login/totp",
            &[("device_name", "iPhone"), ("code", &oathtool(&key, 0))],
        )
        .await;
    assert!(done.is_see_other("/login/next"), "{}", done.summary());
    let top = b.follow(b.follow(done).await).await;
    assert!(top.body.contains(&letter.name), "{}", top.summary());
    AppMember {
        email: letter.email,
        name: letter.name,
        user_id: user_id.to_lowercase(),
        password,
        key,
        browser: b,
    }
}

/// What 「実行」 answered: the status and `Location` of the reply, and the page it leads to.
struct Answer {
    status: u16,
    location: String,
    page: Reply,
}

/// 「ユーザ ID」 → 「実行」.
async fn ask(b: &Browser, user_id: &str) -> Answer {
    let reply = b.fill("/forgot-password", &[("user_id", user_id)]).await;
    let (status, location) = (reply.status, reply.location.clone());
    Answer {
        status,
        location,
        page: b.follow(reply).await,
    }
}

/// The texts of the mails to `to` whose subject contains `subject`, once there are `n`.
pub async fn mails(smtp: &SmtpServer, to: &str, subject: &str, n: usize) -> Vec<String> {
    let mut found = Vec::new();
    eventually(Duration::from_secs(10), || {
        found = smtp
            .messages()
            .iter()
            .filter_map(|raw| text_for(raw.as_bytes(), to))
            .filter(|text| text.lines().next().unwrap_or("").contains(subject))
            .collect();
        let done = found.len() >= n;
        async move { done }
    })
    .await;
    found
}

/// The 「パスワードをリセット」 link of a mail: (host with port, path and query).
fn reset_link(mail: &str) -> (String, String) {
    let line = mail
        .lines()
        .skip_while(|l| !l.contains("パスワードをリセット："))
        .nth(1)
        .unwrap_or_else(|| panic!("no link in:\n{mail}"))
        .trim();
    let rest = line
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{line}"));
    let slash = rest.find('/').unwrap();
    (rest[..slash].to_owned(), rest[slash..].to_owned())
}

pub async fn audit_count(db: &TestDb, event: &str) -> i64 {
    count(
        db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE event = $1",
        &[Arg::Text(event)],
    )
    .await
}

async fn a_reset_link_replaces_the_app_and_works_once(backend: Backend) {
    let smtp = SmtpServer::start(free_port());
    let db = Arc::new(TestDb::fresh(backend).await);
    let app = app_with_smtp(Arc::clone(&db), &smtp);
    let m = member_with_app(&app, &smtp, "daiwakenpo").await;
    let id = member_id(&db, "daiwakenpo", &m.user_id).await;
    let b = Browser::new(&app, &host_of("daiwakenpo"));

    // Another browser is signed in; the reset will end its session.
    let other = Browser::new(&app, &host_of("daiwakenpo"));
    let next = login_ok(&other, &m.user_id, &m.password).await;
    assert!(next.is_see_other("/login/factor"), "{}", next.summary());
    let otp = other
        .fill("/login/otp", &[("code", &oathtool(&m.key, 30))])
        .await;
    other.follow(other.follow(otp).await).await;
    assert_eq!(other.get("/").await.status, 200);

    // The login page leads there by the manual's words.
    assert!(b
        .get("/login")
        .await
        .text()
        .contains("パスワードを忘れた方はこちら"));
    assert!(b
        .get("/forgot-password")
        .await
        .text()
        .contains("パスワード更新メール送信"));

    // An unknown ID and the member's own: the same answer, to the byte.
    let state_before = value(
        &db,
        "SELECT password_hash || '|' || CAST(failed_logins AS TEXT) FROM members WHERE id = $1",
        &[Arg::Text(&id)],
    )
    .await;
    let unknown = ask(&b, "nobody-here").await;
    let known = ask(&b, &m.user_id.to_uppercase()).await;
    for answer in [&unknown, &known] {
        assert_eq!(
            (answer.status, answer.location.as_str()),
            (303, "/forgot-password/sent")
        );
    }
    assert_eq!(
        without_csrf_tokens(&unknown.page.body),
        without_csrf_tokens(&known.page.body)
    );
    assert!(known.page.text().contains("受け付けました"));

    let first = mails(&smtp, &m.email, "パスワードリセットのご案内", 1).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0].contains(&m.name), "{}", first[0]);
    assert!(first[0].contains("有効時間は5分"), "{}", first[0]);
    let (host, first_link) = reset_link(&first[0]);
    // Built from the tenant's configured host, whatever the request said.
    assert!(host.starts_with("daiwakenpo.localhost:"), "{host}");
    let token = first_link.rsplit('=').next().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    // Stored as a hash only.
    assert_eq!(
        count(
            &db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM one_time_tokens WHERE token_hash = $1",
            &[Arg::Text(&token)]
        )
        .await,
        0
    );
    // Asking changed nothing about the account.
    let state_after = value(
        &db,
        "SELECT password_hash || '|' || CAST(failed_logins AS TEXT) FROM members WHERE id = $1",
        &[Arg::Text(&id)],
    )
    .await;
    assert_eq!(state_before, state_after);

    // On the other society's host the link is refused like a stale one.
    let k = Browser::new(&app, &host_of("kanekakenpo"));
    let foreign = k.get(&first_link).await;
    assert_eq!(foreign.status, 400, "{}", foreign.summary());
    assert!(foreign.text().contains("このリンクは使えません"));
    assert!(foreign.body.contains("href=\"/forgot-password\""));

    // Tampered and truncated tokens: the same page.
    let flipped = format!(
        "/password-reset?token={}{}",
        &token[..63],
        if token.ends_with('0') { '1' } else { '0' }
    );
    for path in [flipped, format!("/password-reset?token={}", &token[..40])] {
        let r = b.get(&path).await;
        assert_eq!(r.status, 400, "{}", r.summary());
        assert!(r.body.contains("role=\"alert\""));
    }

    // A newer request voids the first link.
    ask(&b, &m.user_id).await;
    let both = mails(&smtp, &m.email, "パスワードリセットのご案内", 2).await;
    assert_eq!(both.len(), 2);
    let (_, link) = reset_link(&both[1]);
    assert_ne!(link, first_link);
    let stale = b.get(&first_link).await;
    assert_eq!(stale.status, 400, "{}", stale.summary());

    // The newer link: a new authenticator app (§3-3 ⑥–⑨), then the new password.
    let opened = b.get(&link).await;
    assert!(opened.is_see_other("/login/next"), "{}", opened.summary());
    assert!(!opened.location.contains("token"));
    let next = b.follow(opened).await;
    assert!(next.is_see_other("/login/totp"), "{}", next.summary());
    let setup = b.get("/login/totp").await;
    assert!(setup.text().contains("スキャンできませんか？"));
    let key = shown_key(&setup);
    assert_ne!(key, m.key);
    // Until the new app is confirmed, the old one stands.
    assert_eq!(
        count(
            &db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM mfa_devices WHERE member_id = $1",
            &[Arg::Text(&id)]
        )
        .await,
        1
    );
    // The name of the old device is free: the new one replaces it.
    let done = b
        .fill(
            "/login/totp",
            &[("device_name", "iPhone"), ("code", &oathtool(&key, 0))],
        )
        .await;
    assert!(done.is_see_other("/login/next"), "{}", done.summary());
    let next = b.follow(done).await;
    assert!(
        next.is_see_other("/password-reset/new"),
        "{}",
        next.summary()
    );
    let form = b.get("/password-reset/new").await;
    for label in ["パスワード更新", "パスワード確認用", "実行"] {
        assert!(form.text().contains(label), "{label}: {}", form.summary());
    }
    // The current password, a mismatch, a 10 KB password: refused next to the field.
    let long = "a".repeat(10_000);
    let new_password = fresh_password();
    for (password, confirm) in [
        (m.password.as_str(), m.password.as_str()),
        (new_password.as_str(), "something-else"),
        (long.as_str(), long.as_str()),
    ] {
        let r = b
            .fill(
                "/password-reset/new",
                &[("password", password), ("password_confirm", confirm)],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.summary());
        assert!(r.body.contains("role=\"alert\""), "{}", r.summary());
    }
    let done = b
        .fill(
            "/password-reset/new",
            &[
                ("password", &new_password),
                ("password_confirm", &new_password),
            ],
        )
        .await;
    assert!(done.is_see_other("/login/next"), "{}", done.summary());
    let next = b.follow(done).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    let top = b.follow(next).await;
    assert!(top.body.contains(&m.name), "{}", top.summary());

    // One device now: the new app; the old key no longer works.
    assert_eq!(
        count(
            &db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM mfa_devices WHERE member_id = $1",
            &[Arg::Text(&id)]
        )
        .await,
        1
    );
    // The other browser was signed out.
    let gone = other.get("/").await;
    assert!(!gone.text().contains(&m.name), "{}", gone.summary());
    // A notice went to the member, and the link is spent.
    let notice = mails(&smtp, &m.email, "パスワードが変更されました", 1).await;
    assert_eq!(notice.len(), 1);
    assert!(notice[0].contains("二要素認証の設定も"), "{}", notice[0]);
    let again = b.get(&link).await;
    assert_eq!(again.status, 400, "{}", again.summary());
    assert_eq!(audit_count(&db, "password_reset_finished").await, 1);

    // The old password is refused, the new one and the new app sign in.
    let c = Browser::new(&app, &host_of("daiwakenpo"));
    let refused = login(&c, &m.user_id, &m.password).await;
    assert_eq!(refused.status, 200);
    let next = login_ok(&c, &m.user_id, &new_password).await;
    assert!(next.is_see_other("/login/factor"), "{}", next.summary());
    let old_app = c
        .fill("/login/otp", &[("code", &oathtool(&m.key, 0))])
        .await;
    assert_eq!(old_app.status, 200);
    let new_app = c.fill("/login/otp", &[("code", &oathtool(&key, 30))]).await;
    assert!(new_app.is_see_other("/login/next"), "{}", new_app.summary());

    // A link asked for before a sign-in is void after it.
    ask(&b, &m.user_id).await;
    let third = mails(&smtp, &m.email, "パスワードリセットのご案内", 3).await;
    let (_, before_signin) = reset_link(&third[2]);
    c.follow(new_app).await;
    let void = b.get(&before_signin).await;
    assert_eq!(void.status, 400, "{}", void.summary());

    // Bad input: a clear message next to the field; nothing counted or sent.
    let asked = audit_count(&db, "password_reset_requested").await;
    for input in ["", "a\r\nb", long.as_str(), "\u{7}bell"] {
        let r = b.fill("/forgot-password", &[("user_id", input)]).await;
        assert_eq!(r.status, 200, "{}", r.summary());
        assert!(r.body.contains("role=\"alert\""), "{}", r.summary());
    }
    assert_eq!(audit_count(&db, "password_reset_requested").await, asked);

    // Three links a quarter of an hour per member; the fourth request sends nothing.
    ask(&b, &m.user_id).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        mails(&smtp, &m.email, "パスワードリセットのご案内", 4)
            .await
            .len(),
        3
    );
    assert!(audit_count(&db, "password_reset_refused").await >= 1);
    // Ten requests a quarter of an hour per address (this one made 5 already).
    for _ in 0..7 {
        let answer = ask(&b, "nobody-here").await;
        assert_eq!(answer.location, "/forgot-password/sent");
    }
    assert_eq!(audit_count(&db, "password_reset_requested").await, 10);
    assert_eq!(audit_count(&db, "password_reset_throttled").await, 2);
}

async fn a_reset_keeps_the_factor_the_member_holds_and_asks_for_it(backend: Backend) {
    let smtp = SmtpServer::start(free_port());
    let db = Arc::new(TestDb::fresh(backend).await);
    let app = app_with_smtp(Arc::clone(&db), &smtp);
    let m = member_with_app(&app, &smtp, "kanekakenpo").await;
    let id = member_id(&db, "kanekakenpo", &m.user_id).await;
    let devices = || {
        let db = Arc::clone(&db);
        let id = id.clone();
        async move {
            value(
                &db,
                "SELECT id FROM mfa_devices WHERE member_id = $1",
                &[Arg::Text(&id)],
            )
            .await
        }
    };
    let device = devices().await;
    let b = Browser::new(&app, &host_of("kanekakenpo"));
    ask(&b, &m.user_id).await;
    let mail = mails(&smtp, &m.email, "パスワードリセットのご案内", 1).await;
    let (host, link) = reset_link(&mail[0]);
    assert!(host.starts_with("kanekakenpo.localhost:"), "{host}");
    // Not on daiwakenpo's host.
    let d = Browser::new(&app, &host_of("daiwakenpo"));
    assert_eq!(d.get(&link).await.status, 400);

    let next = b.follow(b.get(&link).await).await;
    assert!(next.is_see_other("/login/factor"), "{}", next.summary());
    // The password page is not reachable before the factor.
    let early = b.get("/password-reset/new").await;
    assert!(early.is_see_other("/login/factor"), "{}", early.summary());
    let wrong = b.fill("/login/otp", &[("code", "000000")]).await;
    assert_eq!(wrong.status, 200);
    let ok = b
        .fill("/login/otp", &[("code", &oathtool(&m.key, 30))])
        .await;
    assert!(ok.is_see_other("/login/next"), "{}", ok.summary());
    let next = b.follow(ok).await;
    assert!(
        next.is_see_other("/password-reset/new"),
        "{}",
        next.summary()
    );
    let new_password = fresh_password();
    let done = b
        .fill(
            "/password-reset/new",
            &[
                ("password", &new_password),
                ("password_confirm", &new_password),
            ],
        )
        .await;
    let top = b.follow(b.follow(done).await).await;
    assert!(top.body.contains(&m.name), "{}", top.summary());
    // The app the member held is the one they still hold.
    assert_eq!(devices().await, device);
    let notice = mails(&smtp, &m.email, "パスワードが変更されました", 1).await;
    assert!(!notice[0].contains("二要素認証の設定も"), "{}", notice[0]);
    assert_eq!(b.get(&link).await.status, 400);
}

async fn reset_links_expire_with_the_lifetime_of_the_tenant_file(backend: Backend) {
    let smtp = SmtpServer::start(free_port());
    let db = Arc::new(TestDb::fresh(backend).await);
    // The society shortens its links to one minute in its tenant file.
    let file = std::fs::read_to_string(db.tenants_dir.join("daiwakenpo.toml"))
        .unwrap()
        .replace("reset_lifetime_minutes = 5", "reset_lifetime_minutes = 1");
    let out = db.run_with_input(&["tenant", "apply", "-"], &file);
    assert!(out.status.success(), "{}", stderr(&out));
    let app = app_with_smtp(Arc::clone(&db), &smtp);
    let m = member_with_app(&app, &smtp, "daiwakenpo").await;
    let b = Browser::new(&app, &host_of("daiwakenpo"));
    ask(&b, &m.user_id).await;
    let mail = mails(&smtp, &m.email, "パスワードリセットのご案内", 1).await;
    assert!(mail[0].contains("有効時間は1分"), "{}", mail[0]);
    let (_, link) = reset_link(&mail[0]);
    let lifetime = value(
        &db,
        "SELECT CAST(expires_at - created_at AS TEXT) FROM one_time_tokens \
         WHERE purpose = 'password_reset'",
        &[],
    )
    .await;
    assert_eq!(lifetime.as_deref(), Some("60"));
    // The minute passes (the clock of the row, not of the test).
    exec(
        &db,
        "UPDATE one_time_tokens SET created_at = created_at - 61, expires_at = expires_at - 61 \
         WHERE purpose = 'password_reset'",
        &[],
    )
    .await;
    let expired = b.get(&link).await;
    assert_eq!(expired.status, 400, "{}", expired.summary());
    assert!(expired.text().contains("1分"), "{}", expired.summary());
    assert!(b.cookie("portal_flow").is_none());
}
