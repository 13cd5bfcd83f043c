//! Sign-in as a member would do it with a browser (SPEC §3 journeys 1, 2, 6, 7, 13, 14 and
//! §6.1): the first login as one state machine whose steps cannot be skipped, generic
//! failures, host-only cookies, CSRF, bad input, double submits, lockout that survives a
//! restart, the audit log, changing user ID and password (with step-up), new terms, logout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::browser_like::{
    add_some_member, csrf_token, first_login, fresh_password, fresh_user_id, hidden_value, login,
    login_ok, signed_in_member, without_csrf_tokens, Browser, Reply, DAIWA_HOST, KANEKA_HOST,
    USER_AGENT,
};
use crate::db::{count, exec, member_id, now_unix, rows, value, Arg};
use crate::harness::{
    eventually, on_both_backends, repo_root, stderr, stdout, Backend, TestApp, TestDb, DAIWA,
    KANEKA,
};

on_both_backends!(
    first_login_walks_in_order_and_no_step_can_be_skipped,
    every_failed_password_login_shows_the_same_generic_message,
    session_cookies_are_host_only_and_useless_on_another_tenant,
    posts_without_a_valid_csrf_token_are_refused_and_change_nothing,
    form_tokens_come_with_forms_and_stay_good_across_pages_and_tabs,
    each_member_sees_their_own_top_page_as_it_is_now,
    bad_input_gets_a_message_and_changes_nothing,
    double_submit_of_the_first_login_password_keeps_one_password,
    lockout_after_five_failures_survives_a_restart_and_is_audited,
    member_changes_user_id,
    member_changes_password_after_step_up,
    new_terms_must_be_accepted_at_the_next_login,
    logout_ends_the_session,
    an_expired_lock_starts_a_fresh_count,
    a_busy_hasher_is_no_server_error_on_the_password_forms,
);

const INVALID: &str = "無効なユーザ ID またはパスワードです。";
const LOCKED: &str = "アカウントがロックされています。ご加入の健保組合までお問い合わせください。";
const FORBIDDEN_TITLE: &str = "操作を続けられません";
const TOO_LARGE_TITLE: &str = "入力が長すぎます";
const BIRTH_DATE_WRONG: &str = "生年月日が正しくありません。";
const BIRTH_DATE_FORMAT: &str = "生年月日を正しく入力してください（例：1980-04-01）。";
const USER_ID_TAKEN: &str = "このユーザ IDは使用できません。別のユーザ IDを入力してください。";
const USER_ID_FORBIDDEN: &str = "ユーザ IDに使用できない文字が含まれています";
const PASSWORD_FORBIDDEN: &str = "パスワードに使用できない文字が含まれています";
const SAME_AS_CURRENT: &str = "現在のパスワードと同じパスワードには変更できません。";
const EMAIL_CONTROL: &str = "メールアドレスに改行や制御文字は使用できません。";
const EMAIL_TOO_LONG: &str = "メールアドレスは254文字以内で入力してください。";
const STEP_UP: &str = "続行する際には再度認証してください。";
const LOGIN_LINK: &str = ">ログイン</a>";

const FLOW_PAGES: [&str; 5] = [
    "/login/birth-date",
    "/login/terms",
    "/login/user-id",
    "/login/password",
    "/login/email",
];

// --- database access -----------------------------------------------------------------------

async fn column_of(db: &TestDb, column: &str, id: &str) -> String {
    value(
        db,
        &format!("SELECT CAST({column} AS TEXT) FROM members WHERE id = $1"),
        &[Arg::Text(id)],
    )
    .await
    .unwrap_or_default()
}

/// One line of the audit log.
#[derive(Debug)]
struct Audit {
    event: String,
    member_id: String,
    ip: String,
    user_agent: String,
    detail: String,
}

async fn audit_log(db: &TestDb) -> Vec<Audit> {
    rows(
        db,
        "SELECT event, member_id, ip, user_agent, detail FROM audit_events ORDER BY created_at",
        &[],
    )
    .await
    .into_iter()
    .map(|r| {
        let col = |i: usize| r[i].clone().unwrap_or_default();
        Audit {
            event: col(0),
            member_id: col(1),
            ip: col(2),
            user_agent: col(3),
            detail: col(4),
        }
    })
    .collect()
}

fn events_of<'a>(log: &'a [Audit], member: &str, event: &str) -> Vec<&'a Audit> {
    log.iter()
        .filter(|a| a.member_id == member && a.event == event)
        .collect()
}

// --- small helpers --------------------------------------------------------------------------

/// Today in Japan, as the login-methods page writes it.
fn today_jst() -> String {
    let format = time::macros::format_description!("[year]/[month]/[day]");
    time::OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+9))
        .format(&format)
        .unwrap()
}

/// The visible service titles of a seed tenant, from its file.
fn service_titles(slug: &str) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(repo_root().join(format!("tenants/{slug}.toml"))).unwrap();
    let file: toml::Value = toml::from_str(&text).unwrap();
    let mut visible = Vec::new();
    let mut hidden = Vec::new();
    for s in file["services"].as_array().unwrap() {
        let title = s["title"].as_str().unwrap().to_owned();
        if s.get("visible").and_then(|v| v.as_bool()).unwrap_or(true) {
            visible.push(title);
        } else {
            hidden.push(title);
        }
    }
    (visible, hidden)
}

/// Applies `edit` to the exported definition of `slug` and applies the result.
fn edit_tenant(db: &TestDb, slug: &str, edit: impl FnOnce(String) -> String) {
    let out = db.run(&["tenant", "export", slug]);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = stdout(&out);
    let after = edit(before.clone());
    assert_ne!(before, after, "the edit changed nothing");
    let out = db.run_with_input(&["tenant", "apply", "-"], &after);
    assert!(out.status.success(), "apply: {}\n{after}", stderr(&out));
}

/// The reply is a page (2xx/4xx, never a server error) that says `text`.
#[track_caller]
fn assert_says(reply: &Reply, status: u16, text: &str) {
    assert_eq!(reply.status, status, "{}", reply.summary());
    assert!(
        reply.body.contains(text),
        "missing {text:?}: {}",
        reply.summary()
    );
}

/// A generic login failure: 200, the message, no sign-in state handed out.
#[track_caller]
fn assert_login_failed(reply: &Reply) {
    // kanekakenpo writes ユーザID without a space.
    let kaneka = INVALID.replace("ユーザ ID", "ユーザID");
    let text = if reply.body.contains("カネカ") {
        kaneka.as_str()
    } else {
        INVALID
    };
    assert_says(reply, 200, text);
    assert!(
        reply.set_cookie("portal_flow").is_none() && reply.set_cookie("portal_session").is_none(),
        "{}",
        reply.summary()
    );
}

#[track_caller]
fn assert_public_top(reply: &Reply, tenant_name: &str, member_name: &str) {
    assert_eq!(reply.status, 200, "{}", reply.summary());
    assert!(reply.body.contains(tenant_name), "{}", reply.summary());
    assert!(reply.body.contains(LOGIN_LINK), "{}", reply.summary());
    assert!(!reply.body.contains(member_name), "{}", reply.summary());
}

/// While `owed` is the action owed, every other page of the flow sends the member there.
async fn assert_only(b: &Browser, owed: &str) {
    let page = b.get(owed).await;
    assert_eq!(page.status, 200, "{owed}: {}", page.summary());
    for path in FLOW_PAGES.iter().copied().filter(|p| *p != owed) {
        let r = b.get(path).await;
        assert!(
            r.is_see_other(owed),
            "GET {path} while {owed} is owed: {}",
            r.summary()
        );
    }
    let r = b.get("/login/next").await;
    assert!(r.is_see_other(owed), "/login/next: {}", r.summary());
    assert!(
        b.cookie("portal_session").is_none(),
        "a session before the end"
    );
}

// --- 1. first login ---------------------------------------------------------------------------

async fn first_login_walks_in_order_and_no_step_can_be_skipped(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let letter = add_some_member(&app.db, "daiwakenpo");
    let id = member_id(&app.db, "daiwakenpo", &letter.user_id).await;
    let b = Browser::new(&app, DAIWA_HOST);
    let chosen = fresh_user_id();
    let password = fresh_password();
    let skipped_id = fresh_user_id();
    let skipped_password = fresh_password();
    let skipped_email = "skipped@example.jp";

    let next = login_ok(&b, &letter.user_id, &letter.password).await;
    assert!(next.is_see_other("/login/birth-date"), "{}", next.summary());
    assert_only(&b, "/login/birth-date").await;
    // The top page is no way round the flow: still the public page, no session.
    let top = b.get("/").await;
    assert_public_top(&top, DAIWA, &letter.name);
    // POSTs to later steps (with a valid token) are refused the same way.
    for (path, fields) in [
        ("/login/terms", vec![("version", "2025-04")]),
        (
            "/login/user-id",
            vec![("user_id", skipped_id.as_str()), ("method", "passkey")],
        ),
        (
            "/login/password",
            vec![
                ("password", skipped_password.as_str()),
                ("password_confirm", skipped_password.as_str()),
            ],
        ),
        ("/login/email", vec![("email", skipped_email)]),
    ] {
        let r = b.submit(path, &fields).await;
        assert!(
            r.is_see_other("/login/birth-date"),
            "POST {path}: {}",
            r.summary()
        );
    }

    let next = b
        .fill("/login/birth-date", &[("birth_date", &letter.birth_date)])
        .await;
    assert!(next.is_see_other("/login/next"), "{}", next.summary());
    assert!(b.follow(next).await.is_see_other("/login/terms"));
    assert_only(&b, "/login/terms").await;
    // A step done is not done again (and a second birth date is no new failure).
    let r = b
        .submit("/login/birth-date", &[("birth_date", "1999-09-09")])
        .await;
    assert!(r.is_see_other("/login/terms"), "{}", r.summary());
    let r = b
        .submit(
            "/login/user-id",
            &[("user_id", &skipped_id), ("method", "passkey")],
        )
        .await;
    assert!(r.is_see_other("/login/terms"), "{}", r.summary());

    let terms = b.get("/login/terms").await;
    assert!(terms.body.contains("同意する"), "{}", terms.summary());
    let version = hidden_value(&terms.body, "version").unwrap();
    let r = b.fill("/login/terms", &[("version", &version)]).await;
    assert!(b.follow(r).await.is_see_other("/login/user-id"));
    assert_only(&b, "/login/user-id").await;
    let page = b.get("/login/user-id").await;
    assert!(
        page.body.contains("利用不可文字一覧を見る"),
        "{}",
        page.summary()
    );
    // Only the tenant's methods are offered: daiwakenpo has no e-mail OTP.
    assert!(page.body.contains("value=\"totp\"") && page.body.contains("value=\"passkey\""));
    assert!(!page.body.contains("value=\"email_otp\""));
    let r = b
        .submit(
            "/login/password",
            &[
                ("password", &skipped_password),
                ("password_confirm", &skipped_password),
            ],
        )
        .await;
    assert!(r.is_see_other("/login/user-id"), "{}", r.summary());

    let r = b
        .fill(
            "/login/user-id",
            &[("user_id", &chosen), ("method", "passkey")],
        )
        .await;
    assert!(b.follow(r).await.is_see_other("/login/password"));
    assert_only(&b, "/login/password").await;
    let r = b.submit("/login/email", &[("email", skipped_email)]).await;
    assert!(r.is_see_other("/login/password"), "{}", r.summary());

    let r = b
        .fill(
            "/login/password",
            &[("password", &password), ("password_confirm", &password)],
        )
        .await;
    assert!(b.follow(r).await.is_see_other("/login/email"));
    assert_only(&b, "/login/email").await;
    let r = b
        .submit(
            "/login/user-id",
            &[("user_id", &skipped_id), ("method", "passkey")],
        )
        .await;
    assert!(r.is_see_other("/login/email"), "{}", r.summary());

    let r = b.fill("/login/email", &[("email", &letter.email)]).await;
    assert!(r.is_see_other("/login/next"), "{}", r.summary());
    // The chosen method (a passkey) is set up before the top page: every page of the flow,
    // and the top page, lead there; still no session.
    let setup = b.get("/login/next").await;
    assert!(
        setup.is_see_other("/login/passkey/setup"),
        "{}",
        setup.summary()
    );
    assert!(setup.set_cookie("portal_session").is_none());
    assert_only(&b, "/login/passkey/setup").await;
    assert_public_top(&b.get("/").await, DAIWA, &letter.name);
    let r = b
        .submit(
            "/login/user-id",
            &[("user_id", &skipped_id), ("method", "totp")],
        )
        .await;
    assert!(r.is_see_other("/login/passkey/setup"), "{}", r.summary());

    let done = crate::passkeys::register(&b, "パスキー").await;
    assert!(done.is_see_other("/"), "{}", done.summary());
    assert!(
        done.set_cookie("portal_session").is_some(),
        "{}",
        done.summary()
    );
    assert!(b.cookie("portal_session").is_some());
    assert!(b.cookie("portal_flow").is_none(), "the flow cookie stays");

    let top = b.get("/").await;
    assert_eq!(top.status, 200);
    assert!(top.body.contains(&letter.name), "{}", top.summary());
    assert!(!top.body.contains(LOGIN_LINK));
    let (visible, hidden) = service_titles("daiwakenpo");
    assert!(!visible.is_empty());
    for title in &visible {
        assert!(top.body.contains(title.as_str()), "service {title} missing");
    }
    for title in &hidden {
        assert!(
            !top.body.contains(title.as_str()),
            "hidden service {title} shown"
        );
    }
    // The flow is spent: its pages now say it expired.
    for path in FLOW_PAGES {
        let r = b.get(path).await;
        assert!(
            r.is_see_other("/login?expired=1"),
            "{path}: {}",
            r.summary()
        );
    }

    // Nothing of the refused POSTs happened.
    assert_eq!(column_of(&app.db, "user_id", &id).await, chosen);
    assert_eq!(column_of(&app.db, "email", &id).await, letter.email);
    assert_eq!(column_of(&app.db, "state", &id).await, "active");
    assert_eq!(
        count(
            &app.db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM terms_acceptances WHERE member_id = $1",
            &[Arg::Text(&id)],
        )
        .await,
        1
    );
    // The session of the first login was opened by proving the passkey just registered.
    assert_eq!(
        value(
            &app.db,
            "SELECT auth_method FROM sessions WHERE member_id = $1",
            &[Arg::Text(&id)],
        )
        .await
        .as_deref(),
        Some("passkey")
    );
    let other = b.private_window(&app);
    assert_login_failed(&login(&other, &skipped_id, &password).await);
    assert_login_failed(&login(&other, &chosen, &skipped_password).await);
    // The temporary credentials are single-use.
    assert_login_failed(&login(&other, &chosen, &letter.password).await);
    assert_login_failed(&login(&other, &letter.user_id, &letter.password).await);
    // The new ones go to the passkey and then straight to the top page.
    let next = crate::passkeys::login(&other, &chosen, &password).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    let top = other.get("/").await;
    assert!(top.body.contains(&letter.name));
}

// --- 2. generic failures ----------------------------------------------------------------------

async fn every_failed_password_login_shows_the_same_generic_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let m = signed_in_member(&app, "daiwakenpo").await;
    let (user_id, password) = (m.user_id.clone(), m.password.clone());
    // Another browser on the member's device (it holds their passkey).
    let b = m.browser.private_window(&app);
    let unknown_id = fresh_user_id();
    let unknown = login(&b, &unknown_id, &password).await;
    let wrong = login(&b, &user_id, "Wrong-password-7").await;
    let empty = login(&b, &user_id, "").await;
    let cross = login(&Browser::new(&app, KANEKA_HOST), &user_id, &password).await;
    for reply in [&unknown, &wrong, &empty, &cross] {
        assert_login_failed(reply);
        // Never which part was wrong.
        assert!(!reply.body.contains(LOCKED));
        assert!(!reply.body.contains("存在しません"));
    }
    assert!(cross.body.contains(KANEKA) && !cross.body.contains(DAIWA));

    let normal = |reply: &Reply, typed: &str| {
        without_csrf_tokens(&reply.body).replace(&format!("value=\"{typed}\""), "value=\"\"")
    };
    assert_eq!(normal(&unknown, &unknown_id), normal(&wrong, &user_id));
    assert_eq!(normal(&empty, &user_id), normal(&wrong, &user_id));
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(
        unknown.headers.get("content-type"),
        wrong.headers.get("content-type")
    );
    // The typed user ID is echoed, nothing else of the input.
    assert!(wrong.body.contains(&format!("value=\"{}\"", user_id)));
    assert!(!wrong.body.contains("Wrong-password-7"));
    assert!(!unknown.body.contains(&password));

    // Two failures do not lock: the member still signs in (password, then passkey).
    let next = crate::passkeys::login(&b, &user_id, &password).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
}

// --- 3. cookies -------------------------------------------------------------------------------

async fn session_cookies_are_host_only_and_useless_on_another_tenant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let m = signed_in_member(&app, "daiwakenpo").await;

    // A fresh login (password, then passkey), to look at every cookie as the server sets it.
    let b = m.browser.private_window(&app);
    let login_page = b.get("/login").await;
    let posted = login(&b, &m.user_id, &m.password).await;
    assert!(posted.is_see_other("/login/next"), "{}", posted.summary());
    let next = b.get("/login/next").await;
    assert!(next.is_see_other("/login/factor"), "{}", next.summary());
    let factor = b.get("/login/factor").await;
    assert!(
        factor.is_see_other("/login/passkey"),
        "{}",
        factor.summary()
    );
    let passkey_page = b.get("/login/passkey").await;
    assert_eq!(passkey_page.status, 200, "{}", passkey_page.summary());
    assert!(
        b.cookie("portal_session").is_none(),
        "a session before the second factor"
    );
    let done = crate::passkeys::sign_in(&b).await;
    assert!(done.is_see_other("/"), "{}", done.summary());
    let all: Vec<&String> = login_page
        .set_cookies
        .iter()
        .chain(&posted.set_cookies)
        .chain(&next.set_cookies)
        .chain(&factor.set_cookies)
        .chain(&passkey_page.set_cookies)
        .chain(&done.set_cookies)
        .collect();
    assert!(!all.is_empty());
    for c in &all {
        assert!(!c.to_ascii_lowercase().contains("domain="), "{c}");
    }
    for (reply, name) in [(&posted, "portal_flow"), (&done, "portal_session")] {
        let c = reply
            .set_cookie(name)
            .unwrap_or_else(|| panic!("{name} not set: {}", reply.summary()));
        assert!(c.contains("HttpOnly"), "{c}");
        assert!(c.contains("SameSite=Lax"), "{c}");
        assert!(c.contains("Path=/"), "{c}");
        assert!(!c.to_ascii_lowercase().contains("domain="), "{c}");
    }

    let session = b.cookie("portal_session").expect("session cookie");
    let cookie = format!("portal_session={session}");
    // On its own host the cookie works…
    let own = b.get_with_cookie("/", &cookie).await;
    assert!(own.body.contains(&m.letter.name), "{}", own.summary());
    // …the browser never sends it to the other host…
    let kaneka = b.at(KANEKA_HOST);
    assert!(kaneka.cookie("portal_session").is_none());
    assert_public_top(&kaneka.get("/").await, KANEKA, &m.letter.name);
    // …and copied there by hand it is nobody's session.
    let copied = kaneka.get_with_cookie("/", &cookie).await;
    assert_public_top(&copied, KANEKA, &m.letter.name);
    assert!(!copied.body.contains(DAIWA));
    for path in [
        "/profile",
        "/login-methods",
        "/logout",
        "/login-methods/password",
    ] {
        let r = kaneka.get_with_cookie(path, &cookie).await;
        assert!(r.is_see_other("/login"), "{path}: {}", r.summary());
    }
    // The copy did not spoil it at home.
    let own = b.get_with_cookie("/profile", &cookie).await;
    assert_eq!(own.status, 200, "{}", own.summary());
    // The flow cookie of one host does not continue a flow on the other either.
    let letter = add_some_member(&app.db, "daiwakenpo");
    let d = Browser::new(&app, DAIWA_HOST);
    login_ok(&d, &letter.user_id, &letter.password).await;
    let flow = d.cookie("portal_flow").expect("flow cookie");
    let r = d
        .at(KANEKA_HOST)
        .get_with_cookie("/login/birth-date", &format!("portal_flow={flow}"))
        .await;
    assert!(r.is_see_other("/login?expired=1"), "{}", r.summary());
}

// --- 4. CSRF ----------------------------------------------------------------------------------

/// POSTs `fields` plus `token` as `csrf_token` when there is one.
async fn post_with(b: &Browser, path: &str, fields: &[(&str, &str)], token: Option<&str>) -> Reply {
    let mut all = fields.to_vec();
    if let Some(t) = token {
        all.push(("csrf_token", t));
    }
    b.post(path, &all).await
}

async fn posts_without_a_valid_csrf_token_are_refused_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let m = signed_in_member(&app, "daiwakenpo").await;
    let id = member_id(&app.db, "daiwakenpo", &m.user_id).await;
    let b = Browser::new(&app, DAIWA_HOST);
    b.get("/login").await; // the CSRF cookie is there; only the token is missing or wrong
    let kaneka_token = b.at(KANEKA_HOST).token().await;
    let wrong_tokens: [Option<&str>; 4] =
        [None, Some(""), Some("not-a-token"), Some(&kaneka_token)];

    let refused = |r: &Reply, what: &str| {
        assert_eq!(r.status, 403, "{what}: {}", r.summary());
        assert!(r.body.contains(FORBIDDEN_TITLE), "{what}: {}", r.summary());
        assert!(r.set_cookie("portal_session").is_none() && r.set_cookie("portal_flow").is_none());
    };

    // Login: right credentials, no or a wrong token.
    for token in wrong_tokens {
        let fields = [("user_id", m.user_id.as_str()), ("password", &m.password)];
        let r = post_with(&b, "/login", &fields, token).await;
        refused(&r, &format!("/login {token:?}"));
    }
    assert!(b.cookie("portal_flow").is_none());

    // Birth date in a flow: the right date without a token does not move the flow on.
    let letter = add_some_member(&app.db, "daiwakenpo");
    let f = Browser::new(&app, DAIWA_HOST);
    login_ok(&f, &letter.user_id, &letter.password).await;
    for token in wrong_tokens {
        let fields = [("birth_date", letter.birth_date.as_str())];
        let r = post_with(&f, "/login/birth-date", &fields, token).await;
        refused(&r, "/login/birth-date");
    }
    assert!(f.get("/login/next").await.is_see_other("/login/birth-date"));

    // Logout and profile of a signed-in member.
    let s = &m.browser;
    let new_id = fresh_user_id();
    for token in wrong_tokens {
        refused(&post_with(s, "/logout", &[], token).await, "/logout");
        let fields = [("user_id", new_id.as_str())];
        refused(&post_with(s, "/profile", &fields, token).await, "/profile");
        let fields = [("password", m.password.as_str()), ("return_to", "/")];
        refused(&post_with(s, "/reauth", &fields, token).await, "/reauth");
    }
    let top = s.get("/").await;
    assert!(
        top.body.contains(&m.letter.name),
        "signed out by a CSRF-less logout"
    );
    assert_eq!(column_of(&app.db, "user_id", &id).await, m.user_id);
    let profile = s.get("/profile").await;
    assert!(profile.body.contains(&format!("value=\"{}\"", m.user_id)));
    // A form from the other host's page is no pass either (checked above); a real token works.
    let r = s.fill("/profile", &[("user_id", &new_id)]).await;
    assert_says(&r, 200, "ユーザ IDを変更しました。");
}

async fn form_tokens_come_with_forms_and_stay_good_across_pages_and_tabs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let m = signed_in_member(&app, "daiwakenpo").await;
    let b = Browser::new(&app, DAIWA_HOST);

    // The logged-out top page has no form: no token, no CSRF cookie.
    let top = b.get("/").await;
    assert_eq!(top.status, 200, "{}", top.summary());
    assert!(csrf_token(&top.body).is_none(), "{}", top.summary());
    assert!(top.set_cookie("portal_csrf").is_none(), "{}", top.summary());

    // The login form has one, and its cookie comes with it.
    let first = b.get("/login").await;
    let first_token = first.csrf_token();
    assert!(
        first.set_cookie("portal_csrf").is_some(),
        "{}",
        first.summary()
    );

    // A second tab's login form keeps the cookie's secret: both tokens stay good, and
    // pages without a form in between change nothing.
    let second_token = b.get("/login").await.csrf_token();
    assert_ne!(first_token, second_token);
    assert!(b.get("/").await.set_cookie("portal_csrf").is_none());
    for token in [&first_token, &second_token] {
        let fields = [("user_id", "nobody-here"), ("password", "Wrong-password-1")];
        let r = post_with(&b, "/login", &fields, Some(token)).await;
        assert_says(&r, 200, INVALID);
    }

    // The same token without its cookie (another browser) is refused.
    let other = Browser::new(&app, DAIWA_HOST);
    let fields = [("user_id", "nobody-here"), ("password", "Wrong-password-1")];
    let r = post_with(&other, "/login", &fields, Some(&first_token)).await;
    assert_eq!(r.status, 403, "{}", r.summary());

    // A signed-in member's top page has no form either; their logout form has one, and it
    // works.
    let s = &m.browser;
    let member_top = s.get("/").await;
    assert!(
        member_top.body.contains(&m.letter.name),
        "{}",
        member_top.summary()
    );
    assert!(member_top.set_cookie("portal_csrf").is_none());
    let logout = s.get("/logout").await;
    let r = post_with(s, "/logout", &[], Some(&logout.csrf_token())).await;
    assert!(r.status < 400, "{}", r.summary());
    assert!(
        !s.get("/").await.body.contains(&m.letter.name),
        "still signed in"
    );
}

/// Top pages are kept rendered (a member's own among them): each member still sees only
/// their own, and a change to the member shows at once.
async fn each_member_sees_their_own_top_page_as_it_is_now(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = signed_in_member(&app, "daiwakenpo").await;
    let second = signed_in_member(&app, "daiwakenpo").await;
    for _ in 0..2 {
        for (me, other) in [(&first, &second), (&second, &first)] {
            let top = me.browser.get("/").await;
            assert_eq!(top.status, 200, "{}", top.summary());
            assert!(top.body.contains(&me.letter.name), "{}", top.summary());
            assert!(!top.body.contains(&other.letter.name), "{}", top.summary());
        }
    }

    // Renamed by the society: the next page shows the new name, the other member's does
    // not change.
    let id = member_id(&app.db, "daiwakenpo", &first.user_id).await;
    exec(
        &app.db,
        "UPDATE members SET display_name = $1 WHERE id = $2",
        &[Arg::Text("改名 後子"), Arg::Text(&id)],
    )
    .await;
    let top = first.browser.get("/").await;
    assert!(top.body.contains("改名 後子"), "{}", top.summary());
    assert!(!top.body.contains(&first.letter.name), "{}", top.summary());
    let top = second.browser.get("/").await;
    assert!(top.body.contains(&second.letter.name), "{}", top.summary());
    assert!(!top.body.contains("改名 後子"), "{}", top.summary());

    // Signed out, the same browser gets the public page, not the member's.
    let logout = first.browser.get("/logout").await;
    let r = post_with(&first.browser, "/logout", &[], Some(&logout.csrf_token())).await;
    assert!(r.status < 400, "{}", r.summary());
    let top = first.browser.get("/").await;
    assert!(!top.body.contains("改名 後子"), "{}", top.summary());
    assert!(top.body.contains(LOGIN_LINK), "{}", top.summary());
}

// --- 5. bad input -----------------------------------------------------------------------------

async fn bad_input_gets_a_message_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let letter = add_some_member(&app.db, "daiwakenpo");
    let id = member_id(&app.db, "daiwakenpo", &letter.user_id).await;
    let b = Browser::new(&app, DAIWA_HOST);
    let never_500 = |r: &Reply, what: &str| {
        assert!(r.status < 500, "{what}: {}", r.summary());
    };

    // Login: a 10 KB password is a plain failure, answered without hashing it.
    let huge = "p".repeat(10 * 1024);
    let started = Instant::now();
    let r = login(&b, &letter.user_id, &huge).await;
    let took = started.elapsed();
    assert_login_failed(&r);
    assert!(
        took < Duration::from_secs(1),
        "10 KB password took {took:?}"
    );
    assert!(!r.body.contains(&huge));
    let long_id = "a".repeat(65);
    for (user_id, password, what) in [
        ("abc\0defgh", letter.password.as_str(), "NUL in user ID"),
        ("abc\u{1}defgh", letter.password.as_str(), "SOH in user ID"),
        (letter.user_id.as_str(), "pass\0word12", "NUL in password"),
        (
            letter.user_id.as_str(),
            "pass\u{7f}word12\n",
            "DEL in password",
        ),
        ("' OR '1'='1", "' OR '1'='1", "SQL in user ID"),
        ("x'; DROP TABLE members;--", "x", "SQL in user ID"),
        (
            long_id.as_str(),
            letter.password.as_str(),
            "65-char user ID",
        ),
    ] {
        let r = login(&b, user_id, password).await;
        never_500(&r, what);
        assert_login_failed(&r);
    }
    // The temporary password with a control character appended is not the password.
    let r = login(&b, &letter.user_id, &format!("{}\u{0}", letter.password)).await;
    assert_login_failed(&r);

    // First login with bad input at every step; none of it is taken.
    let next = login_ok(&b, &letter.user_id, &letter.password).await;
    assert!(next.is_see_other("/login/birth-date"));
    for bad in [
        "1980-04-01\0",
        "1980\0-04-01",
        "\u{1}1980-04-01",
        "19\u{7}0-04-01",
        "' OR '1'='1",
        "",
        "1980/04/01",
        "1980-02-30",
    ] {
        let r = b.fill("/login/birth-date", &[("birth_date", bad)]).await;
        never_500(&r, bad);
        assert_says(&r, 200, BIRTH_DATE_FORMAT);
    }
    // Malformed dates are not counted as failures.
    assert_eq!(column_of(&app.db, "failed_logins", &id).await, "0");
    let r = b
        .fill("/login/birth-date", &[("birth_date", &letter.birth_date)])
        .await;
    assert!(b.follow(r).await.is_see_other("/login/terms"));
    let terms = b.get("/login/terms").await;
    let version = hidden_value(&terms.body, "version").unwrap();
    // A version that is not the one shown is not accepted.
    let r = b
        .fill("/login/terms", &[("version", "x'; DROP TABLE members;--")])
        .await;
    assert!(r.is_see_other("/login/terms"), "{}", r.summary());
    let r = b.fill("/login/terms", &[("version", &version)]).await;
    assert!(b.follow(r).await.is_see_other("/login/user-id"));

    for (bad, shows) in [
        ("abc\0defgh", "U+0000"),
        ("abc\u{1b}defgh", "U+001B"),
        ("abcdefgh\n", "U+000A"),
        ("x'; DROP TABLE members;--", "「'」"),
        ("' OR '1'='1", "「'」"),
    ] {
        let r = b
            .fill("/login/user-id", &[("user_id", bad), ("method", "passkey")])
            .await;
        never_500(&r, bad);
        assert_says(&r, 200, USER_ID_FORBIDDEN);
        assert!(r.text().contains(shows), "{bad:?}: {}", r.summary());
    }
    // A method the tenant does not offer.
    let chosen = fresh_user_id();
    let r = b
        .fill(
            "/login/user-id",
            &[("user_id", &chosen), ("method", "email_otp")],
        )
        .await;
    assert_says(&r, 200, "認証方式を選択してください。");
    assert_eq!(column_of(&app.db, "user_id", &id).await, letter.user_id);
    let r = b
        .fill(
            "/login/user-id",
            &[("user_id", &chosen), ("method", "passkey")],
        )
        .await;
    assert!(b.follow(r).await.is_see_other("/login/password"));

    for bad in ["Passw0rd\0abc", "Passw0rd\u{1b}abc", "Passw0rd\r\nabc"] {
        let r = b
            .fill(
                "/login/password",
                &[("password", bad), ("password_confirm", bad)],
            )
            .await;
        never_500(&r, bad);
        assert_says(&r, 200, PASSWORD_FORBIDDEN);
    }
    let r = b
        .fill(
            "/login/password",
            &[("password", &huge), ("password_confirm", &huge)],
        )
        .await;
    assert_says(&r, 200, "パスワードは64文字以内で入力してください。");
    assert_eq!(column_of(&app.db, "state", &id).await, "temporary");
    let password = fresh_password();
    let r = b
        .fill(
            "/login/password",
            &[("password", &password), ("password_confirm", &password)],
        )
        .await;
    assert!(b.follow(r).await.is_see_other("/login/email"));

    let long_email = format!("{}@{}.example.jp", "a".repeat(60), "b".repeat(200));
    assert!(long_email.chars().count() > 254);
    for (bad, message) in [
        ("taro\0@example.jp", EMAIL_CONTROL),
        ("taro@example.jp\r\nBcc: x@evil.example", EMAIL_CONTROL),
        ("taro@exam\u{1}ple.jp", EMAIL_CONTROL),
        (long_email.as_str(), EMAIL_TOO_LONG),
        ("x'; DROP TABLE members;--", "メールアドレス"),
    ] {
        let r = b.fill("/login/email", &[("email", bad)]).await;
        never_500(&r, bad);
        assert_says(&r, 200, message);
    }
    assert_eq!(column_of(&app.db, "email", &id).await, letter.email);
    let reviewed = column_of(&app.db, "email_reviewed", &id).await;
    assert!(matches!(reviewed.as_str(), "false" | "0"), "{reviewed}");
    let r = b.fill("/login/email", &[("email", &letter.email)]).await;
    assert!(b.follow(r).await.is_see_other("/login/passkey/setup"));
    let next = crate::passkeys::register(&b, "パスキー").await;
    assert!(next.is_see_other("/"), "{}", next.summary());

    // Profile: the same rules for a new user ID.
    for bad in [
        "abc\0defgh",
        "x'; DROP TABLE members;--",
        "' OR '1'='1",
        "短い",
    ] {
        let r = b.fill("/profile", &[("user_id", bad)]).await;
        never_500(&r, bad);
        assert_eq!(r.status, 200, "{}", r.summary());
        assert!(r.body.contains("ユーザ ID"), "{}", r.summary());
        assert!(
            !r.body.contains("ユーザ IDを変更しました。"),
            "{bad:?} accepted"
        );
    }
    assert_eq!(column_of(&app.db, "user_id", &id).await, chosen);

    // A form body over 64 KiB is refused before anything reads it.
    let token = b.token().await;
    let big = format!(
        "csrf_token={token}&user_id={chosen}&password={}",
        "x".repeat(65 * 1024)
    );
    let r = b.post_raw("/login", big.clone()).await;
    assert_says(&r, 413, TOO_LARGE_TITLE);
    let r = b
        .post_raw("/profile", big.replace("password=", "pad="))
        .await;
    assert_says(&r, 413, TOO_LARGE_TITLE);
    assert_eq!(column_of(&app.db, "user_id", &id).await, chosen);

    // The tables still work: the member signs in, the CLI still adds members.
    let fresh = b.private_window(&app);
    let next = crate::passkeys::login(&fresh, &chosen, &password).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    let members = "SELECT CAST(COUNT(*) AS TEXT) FROM members";
    let before = count(&app.db, members, &[]).await;
    add_some_member(&app.db, "daiwakenpo");
    assert_eq!(count(&app.db, members, &[]).await, before + 1);
    assert!(!app.log().contains("panicked"), "{}", app.log());
}

// --- 6. double submit -------------------------------------------------------------------------

async fn double_submit_of_the_first_login_password_keeps_one_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let letter = add_some_member(&app.db, "daiwakenpo");
    let b = Browser::new(&app, DAIWA_HOST);
    let chosen = fresh_user_id();
    login_ok(&b, &letter.user_id, &letter.password).await;
    let r = b
        .fill("/login/birth-date", &[("birth_date", &letter.birth_date)])
        .await;
    b.follow(r).await;
    let version = hidden_value(&b.get("/login/terms").await.body, "version").unwrap();
    let r = b.fill("/login/terms", &[("version", &version)]).await;
    b.follow(r).await;
    let r = b
        .fill(
            "/login/user-id",
            &[("user_id", &chosen), ("method", "passkey")],
        )
        .await;
    assert!(b.follow(r).await.is_see_other("/login/password"));

    let password = fresh_password();
    let token = b.get("/login/password").await.csrf_token();
    let fields = [
        ("password", password.as_str()),
        ("password_confirm", password.as_str()),
        ("csrf_token", token.as_str()),
    ];
    let (one, two) = tokio::join!(
        b.post("/login/password", &fields),
        b.post("/login/password", &fields)
    );
    for r in [&one, &two] {
        assert!(r.status < 500, "{}", r.summary());
        assert_eq!(r.status, 303, "{}", r.summary());
    }
    let next = b.get("/login/next").await;
    assert!(next.is_see_other("/login/email"), "{}", next.summary());
    let r = b.fill("/login/email", &[("email", &letter.email)]).await;
    assert!(b.follow(r).await.is_see_other("/login/passkey/setup"));
    let next = crate::passkeys::register(&b, "パスキー").await;
    assert!(next.is_see_other("/"), "{}", next.summary());

    let other = b.private_window(&app);
    assert_login_failed(&login(&other, &chosen, &letter.password).await);
    let next = crate::passkeys::login(&other, &chosen, &password).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    let id = member_id(&app.db, "daiwakenpo", &chosen).await;
    let log = audit_log(&app.db).await;
    let changes = events_of(&log, &id, "password_changed").len();
    assert!((1..=2).contains(&changes), "{changes} password changes");
}

// --- 7. lockout -------------------------------------------------------------------------------

async fn lockout_after_five_failures_survives_a_restart_and_is_audited(backend: Backend) {
    let db = Arc::new(TestDb::fresh(backend).await);
    let mut app = TestApp::spawn_on(Arc::clone(&db), |_| {});
    let m = signed_in_member(&app, "daiwakenpo").await;
    let id = member_id(&db, "daiwakenpo", &m.user_id).await;
    let r = m.browser.fill("/logout", &[]).await;
    assert!(r.is_see_other("/"), "{}", r.summary());

    let b = Browser::new(&app, DAIWA_HOST);
    let wrong: Vec<String> = (1..=6).map(|i| format!("Wrong-pass-{i}x")).collect();
    for w in &wrong[..5] {
        assert_login_failed(&login(&b, &m.user_id, w).await);
    }
    // Locked: the right password is told so; a wrong one learns nothing.
    let r = login(&b, &m.user_id, &m.password).await;
    assert_says(&r, 403, LOCKED);
    assert!(r.set_cookie("portal_flow").is_none() && b.cookie("portal_flow").is_none());
    assert_login_failed(&login(&b, &m.user_id, &wrong[5]).await);
    let r = login(&b, &m.user_id, &m.password).await;
    assert_says(&r, 403, LOCKED);

    // Wrong birth dates during the first login count too; the lock ends the flow.
    let letter = add_some_member(&db, "daiwakenpo");
    let id2 = member_id(&db, "daiwakenpo", &letter.user_id).await;
    let f = Browser::new(&app, DAIWA_HOST);
    login_ok(&f, &letter.user_id, &letter.password).await;
    for day in 1..=5 {
        let r = f
            .fill(
                "/login/birth-date",
                &[("birth_date", &format!("1970-01-0{day}"))],
            )
            .await;
        assert_says(&r, 200, BIRTH_DATE_WRONG);
    }
    // The flow ends; the member, who proved the password in it, is told why.
    let r = f.get("/login/birth-date").await;
    assert!(r.is_see_other("/login?locked=1"), "{}", r.summary());
    let r = f.get("/login?locked=1").await;
    assert_says(&r, 200, "アカウントがロックされています。");
    let r = f.get("/login/next").await;
    assert!(r.is_see_other("/login?expired=1"), "{}", r.summary());
    let flows = count(
        &db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM login_flows WHERE member_id = $1",
        &[Arg::Text(&id2)],
    )
    .await;
    assert_eq!(flows, 0);
    let r = login(&f, &letter.user_id, &letter.password).await;
    assert_says(&r, 403, LOCKED);

    // The lock survives a restart.
    app.kill();
    let app = TestApp::spawn_on(Arc::clone(&db), |_| {});
    let b = Browser::new(&app, DAIWA_HOST);
    assert_says(&login(&b, &m.user_id, &m.password).await, 403, LOCKED);
    assert_says(
        &login(&b, &letter.user_id, &letter.password).await,
        403,
        LOCKED,
    );
    assert_login_failed(&login(&b, &m.user_id, &wrong[0]).await);

    // The audit log tells the story, from this address and browser, without passwords.
    let log = audit_log(&db).await;
    for (member, event, at_least) in [
        (&id, "login_succeeded", 1),
        (&id, "terms_accepted", 1),
        (&id, "user_id_changed", 1),
        (&id, "password_changed", 1),
        (&id, "logout", 1),
        (&id, "login_failed", 5),
        (&id, "account_locked", 1),
        (&id2, "login_failed", 5),
        (&id2, "account_locked", 1),
    ] {
        let n = events_of(&log, member, event).len();
        assert!(n >= at_least, "{event} of {member}: {n} in {log:#?}");
    }
    assert_eq!(events_of(&log, &id, "account_locked").len(), 1);
    assert_eq!(events_of(&log, &id2, "account_locked").len(), 1);
    assert!(events_of(&log, &id2, "login_failed")
        .iter()
        .all(|a| a.detail.contains("birth date")));
    assert!(events_of(&log, &id2, "login_succeeded").is_empty());
    let mut secrets = vec![m.password.clone(), letter.password.clone()];
    secrets.extend(wrong.iter().cloned());
    for a in &log {
        assert_eq!(a.ip, "127.0.0.1", "{a:?}");
        assert_eq!(a.user_agent, USER_AGENT, "{a:?}");
        for s in &secrets {
            assert!(
                !a.detail.contains(s.as_str()),
                "password in the audit log: {a:?}"
            );
        }
    }
    // Nor anywhere else in the table.
    let dump = format!(
        "{:?}",
        rows(
            &db,
            "SELECT id, tenant_id, member_id, event, ip, user_agent, detail, \
             CAST(created_at AS TEXT) FROM audit_events",
            &[]
        )
        .await
    );
    for s in &secrets {
        assert!(!dump.contains(s.as_str()), "password in audit_events");
    }
}

// --- 8. change user ID ------------------------------------------------------------------------

async fn member_changes_user_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let m = signed_in_member(&app, "daiwakenpo").await;
    let other = add_some_member(&app.db, "daiwakenpo");
    let id = member_id(&app.db, "daiwakenpo", &m.user_id).await;
    let b = &m.browser;

    let profile = b.get("/profile").await;
    assert_says(&profile, 200, "プロフィール変更");
    assert!(profile.body.contains(&m.letter.name));
    assert!(profile.body.contains(&format!("value=\"{}\"", m.user_id)));

    let upper = format!("NEW.{}", portal::random_token(3).to_ascii_uppercase());
    let lower = upper.to_ascii_lowercase();
    let r = b.fill("/profile", &[("user_id", &upper)]).await;
    assert_says(&r, 200, "ユーザ IDを変更しました。");
    assert!(
        r.body.contains(&format!("value=\"{lower}\"")),
        "{}",
        r.summary()
    );
    assert!(r.body.contains("ポータルに戻る"));
    assert_eq!(column_of(&app.db, "user_id", &id).await, lower);

    // Another member's ID, in any case, is taken.
    for taken in [other.user_id.clone(), other.user_id.to_ascii_uppercase()] {
        let r = b.fill("/profile", &[("user_id", &taken)]).await;
        assert_says(&r, 200, USER_ID_TAKEN);
        assert!(!r.body.contains("ユーザ IDを変更しました。"));
    }
    assert_eq!(column_of(&app.db, "user_id", &id).await, lower);
    let other_id = member_id(&app.db, "daiwakenpo", &other.user_id).await;
    assert_ne!(other_id, id);
    // Still signed in after the change.
    assert!(b.get("/").await.body.contains(&m.letter.name));

    let fresh = b.private_window(&app);
    assert_login_failed(&login(&fresh, &m.user_id, &m.password).await);
    let next = crate::passkeys::login(&fresh, &upper, &m.password).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    let fresh = b.private_window(&app);
    let next = crate::passkeys::login(&fresh, &lower, &m.password).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    // The other member's temporary login is untouched.
    let o = Browser::new(&app, DAIWA_HOST);
    let next = login_ok(&o, &other.user_id, &other.password).await;
    assert!(next.is_see_other("/login/birth-date"));

    let log = audit_log(&app.db).await;
    let changes = events_of(&log, &id, "user_id_changed");
    assert_eq!(changes.len(), 2, "{changes:?}"); // first login + profile
    assert!(changes.iter().any(|a| a.detail.contains(&lower)));
}

// --- 9. change password with step-up ----------------------------------------------------------

async fn member_changes_password_after_step_up(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let m = signed_in_member(&app, "daiwakenpo").await;
    let id = member_id(&app.db, "daiwakenpo", &m.user_id).await;
    let b = &m.browser;

    let methods = b.get("/login-methods").await;
    assert_says(&methods, 200, "作成日");
    assert!(methods.body.contains("id=\"password-created\""));
    // Fresh from the login: no step-up needed.
    let form = b.get("/login-methods/password").await;
    assert_says(&form, 200, "パスワード確認用");

    // A short step-up age for the tenant, noticed by the running server: an
    // authentication two minutes old is now too old.
    edit_tenant(&app.db, "daiwakenpo", |t| {
        t.replacen(
            "step_up_max_age_minutes = 5",
            "step_up_max_age_minutes = 1",
            1,
        )
    });
    exec(
        &app.db,
        "UPDATE sessions SET authenticated_at = $1 WHERE member_id = $2",
        &[Arg::Int(now_unix() - 120), Arg::Text(&id)],
    )
    .await;
    let noticed = eventually(Duration::from_secs(10), || async {
        b.get("/login-methods/password").await.status == 303
    })
    .await;
    assert!(
        noticed,
        "the 1-minute step-up age was not applied:\n{}",
        app.log()
    );
    exec(
        &app.db,
        "UPDATE sessions SET authenticated_at = $1 WHERE member_id = $2",
        &[Arg::Int(now_unix() - 600), Arg::Text(&id)],
    )
    .await;
    // The shown creation date must change; start from a known old one.
    exec(
        &app.db,
        "UPDATE members SET password_created_at = $1 WHERE id = $2",
        &[Arg::Int(1_577_836_800), Arg::Text(&id)], // 2020-01-01 09:00 JST
    )
    .await;
    let methods = b.get("/login-methods").await;
    assert!(
        methods
            .text()
            .contains("<span id=\"password-created\">2020/01/01</span>"),
        "{}",
        methods.summary()
    );

    let reauth = "/reauth?return_to=/login-methods/password";
    let r = b.get("/login-methods/password").await;
    assert!(r.is_see_other(reauth), "{}", r.summary());
    // Posting the change without step-up is sent there too, and changes nothing.
    let candidate = fresh_password();
    let r = b
        .submit(
            "/login-methods/password",
            &[("password", &candidate), ("password_confirm", &candidate)],
        )
        .await;
    assert!(r.is_see_other(reauth), "{}", r.summary());

    let page = b.get(reauth).await;
    assert_says(&page, 200, STEP_UP);
    assert_eq!(
        hidden_value(&page.body, "return_to").as_deref(),
        Some("/login-methods/password")
    );
    let r = b
        .fill(
            reauth,
            &[
                ("password", "Wrong-pass-9x"),
                ("return_to", "/login-methods/password"),
            ],
        )
        .await;
    assert_says(&r, 200, INVALID);
    let before_reauth = b.cookie("portal_session").unwrap();
    // This session was opened with a passkey (at the first login's set-up): the password
    // alone completes the step-up, with no second-factor step.
    let r = b
        .fill(
            reauth,
            &[
                ("password", &m.password),
                ("return_to", "/login-methods/password"),
            ],
        )
        .await;
    assert!(r.is_see_other("/login-methods/password"), "{}", r.summary());
    let after_reauth = b.cookie("portal_session").unwrap();
    assert_ne!(
        before_reauth, after_reauth,
        "step-up did not rotate the session"
    );

    let form = b.get("/login-methods/password").await;
    assert_says(&form, 200, "パスワード確認用");
    let r = b
        .fill(
            "/login-methods/password",
            &[("password", &m.password), ("password_confirm", &m.password)],
        )
        .await;
    assert_says(&r, 200, SAME_AS_CURRENT);

    let new_password = fresh_password();
    let r = b
        .fill(
            "/login-methods/password",
            &[
                ("password", &new_password),
                ("password_confirm", &new_password),
            ],
        )
        .await;
    assert!(
        r.is_see_other("/login-methods?updated=1"),
        "{}",
        r.summary()
    );
    let rotated = b.cookie("portal_session").unwrap();
    assert_ne!(rotated, after_reauth, "the session token did not rotate");
    let page = b.follow(r).await;
    assert_says(&page, 200, "パスワードを更新しました。");
    let today = today_jst();
    assert!(
        page.text()
            .contains(&format!("<span id=\"password-created\">{today}</span>")),
        "expected {today}: {}",
        page.summary()
    );
    // The old token stopped working; the new one works.
    for old in [&before_reauth, &after_reauth] {
        let r = b
            .get_with_cookie("/login-methods", &format!("portal_session={old}"))
            .await;
        assert!(r.is_see_other("/login"), "{}", r.summary());
    }
    let r = b
        .get_with_cookie("/login-methods", &format!("portal_session={rotated}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.summary());

    let fresh = b.private_window(&app);
    assert_login_failed(&login(&fresh, &m.user_id, &m.password).await);
    assert_login_failed(&login(&fresh, &m.user_id, &candidate).await);
    let next = crate::passkeys::login(&fresh, &m.user_id, &new_password).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    let log = audit_log(&app.db).await;
    assert_eq!(events_of(&log, &id, "password_changed").len(), 2);
    for a in &log {
        assert!(!a.detail.contains(&new_password) && !a.detail.contains(&m.password));
    }
}

// --- 10. new terms ----------------------------------------------------------------------------

async fn new_terms_must_be_accepted_at_the_next_login(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let m = signed_in_member(&app, "daiwakenpo").await;
    let id = member_id(&app.db, "daiwakenpo", &m.user_id).await;
    let title = "KOSMO Communication Web 利用規約（2026年11月改定）";
    let line = "第6条（改定）本規約は2026年11月に改定されました。";
    edit_tenant(&app.db, "daiwakenpo", |t| {
        let t = t.replacen("current = \"2025-04\"", "current = \"2026-11\"", 1);
        format!(
            "{t}\n[[terms.versions]]\nversion = \"2026-11\"\npublished_at = \"2026-11-01\"\n\
             title = \"{title}\"\nbody = \"{line}\\n第7条（附則）以上。\"\n"
        )
    });

    // The next login (once the server has the new version) stops at the terms, which come
    // after the second factor (the passkey).
    let mut b = m.browser.private_window(&app);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let next = crate::passkeys::login(&b, &m.user_id, &m.password).await;
        if next.is_see_other("/login/terms") {
            break;
        }
        assert!(next.is_see_other("/"), "{}", next.summary());
        assert!(Instant::now() < deadline, "new terms never asked for");
        tokio::time::sleep(Duration::from_millis(100)).await;
        b = m.browser.private_window(&app);
    }
    assert!(b.cookie("portal_session").is_none());
    assert_public_top(&b.get("/").await, DAIWA, &m.letter.name);
    let terms = b.get("/login/terms").await;
    assert_says(&terms, 200, line);
    assert!(terms.body.contains(title), "{}", terms.summary());
    assert!(terms.body.contains("第7条（附則）以上。"));
    assert!(terms.body.contains("同意する"));
    // Dated as every member page dates: 2026/11/01.
    assert!(
        terms.text().contains("制定日：2026/11/01"),
        "{}",
        terms.summary()
    );
    assert_eq!(
        hidden_value(&terms.body, "version").as_deref(),
        Some("2026-11")
    );
    // Agreeing to the old version is not agreeing to the new one.
    let r = b.fill("/login/terms", &[("version", "2025-04")]).await;
    assert!(r.is_see_other("/login/terms"), "{}", r.summary());
    let r = b.fill("/login/terms", &[("version", "2026-11")]).await;
    assert!(r.is_see_other("/login/next"), "{}", r.summary());
    let r = b.follow(r).await;
    assert!(r.is_see_other("/"), "{}", r.summary());
    let top = b.get("/").await;
    assert!(top.body.contains(&m.letter.name), "{}", top.summary());

    let history = rows(
        &app.db,
        "SELECT version, CAST(accepted_at AS TEXT) FROM terms_acceptances \
         WHERE member_id = $1 ORDER BY accepted_at, version",
        &[Arg::Text(&id)],
    )
    .await;
    let versions: Vec<&str> = history.iter().map(|r| r[0].as_deref().unwrap()).collect();
    assert_eq!(versions, ["2025-04", "2026-11"]);
    let times: Vec<i64> = history
        .iter()
        .map(|r| r[1].as_deref().unwrap().parse().unwrap())
        .collect();
    let now = now_unix();
    assert!(
        times.iter().all(|t| (now - 600..=now + 5).contains(t)),
        "{times:?}"
    );
    assert!(times[0] <= times[1]);
    assert_eq!(column_of(&app.db, "terms_version", &id).await, "2026-11");
    // And the login after that goes from the passkey straight to the top page.
    let c = m.browser.private_window(&app);
    let next = crate::passkeys::login(&c, &m.user_id, &m.password).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
}

// --- 11. logout -------------------------------------------------------------------------------

async fn logout_ends_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let m = signed_in_member(&app, "daiwakenpo").await;
    let id = member_id(&app.db, "daiwakenpo", &m.user_id).await;
    let b = &m.browser;
    let top = b.get("/").await;
    assert!(top.body.contains("href=\"/logout\""), "{}", top.summary());

    let page = b.get("/logout").await;
    assert_says(&page, 200, "ログアウトしてもよろしいですか？");
    assert!(page.body.contains("ログアウトする"));
    let session = b.cookie("portal_session").unwrap();
    let sessions = || async {
        count(
            &app.db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM sessions WHERE member_id = $1",
            &[Arg::Text(&id)],
        )
        .await
    };
    assert_eq!(sessions().await, 1);

    let r = b
        .post("/logout", &[("csrf_token", &page.csrf_token())])
        .await;
    assert!(r.is_see_other("/"), "{}", r.summary());
    let removal = r.set_cookie("portal_session").expect("cookie removed");
    assert!(
        removal.contains("Max-Age=0") || removal.to_ascii_lowercase().contains("expires="),
        "{removal}"
    );
    assert!(b.cookie("portal_session").is_none());
    assert_eq!(sessions().await, 0);

    assert_public_top(&b.get("/").await, DAIWA, &m.letter.name);
    let old = format!("portal_session={session}");
    assert_public_top(&b.get_with_cookie("/", &old).await, DAIWA, &m.letter.name);
    for path in ["/profile", "/login-methods", "/logout"] {
        let r = b.get_with_cookie(path, &old).await;
        assert!(r.is_see_other("/login"), "{path}: {}", r.summary());
    }
    let log = audit_log(&app.db).await;
    let logouts = events_of(&log, &id, "logout");
    assert_eq!(logouts.len(), 1);
    assert_eq!(logouts[0].ip, "127.0.0.1");
    assert_eq!(logouts[0].user_agent, USER_AGENT);

    // A new login (password, then passkey) gives a new session.
    let next = crate::passkeys::login(b, &m.user_id, &m.password).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    assert_ne!(b.cookie("portal_session").unwrap(), session);
}

// --- found while writing the above ------------------------------------------------------------

/// A temporary lock that has run out gives the member the tenant's full number of tries
/// again (SPEC §2 lockout: "lock duration (temporary)").
async fn an_expired_lock_starts_a_fresh_count(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (user_id, password) = first_login(&app, "daiwakenpo").await;
    let id = member_id(&app.db, "daiwakenpo", &user_id).await;
    let b = Browser::new(&app, DAIWA_HOST);
    for i in 1..=5 {
        assert_login_failed(&login(&b, &user_id, &format!("Wrong-pass-{i}x")).await);
    }
    assert_says(&login(&b, &user_id, &password).await, 403, LOCKED);
    // Thirty minutes later (the tenant's lock duration): the lock has run out.
    exec(
        &app.db,
        "UPDATE members SET locked_until = $1 WHERE id = $2",
        &[Arg::Int(now_unix() - 1), Arg::Text(&id)],
    )
    .await;
    // One more typo must not lock the account again at once.
    assert_login_failed(&login(&b, &user_id, "Wrong-pass-6x").await);
    let r = login(&b, &user_id, &password).await;
    assert!(
        r.is_see_other("/login/next"),
        "one failure after an expired lock locked the account again (failed_logins = {}, \
         locked_until = {}): {}",
        column_of(&app.db, "failed_logins", &id).await,
        column_of(&app.db, "locked_until", &id).await,
        r.summary()
    );
}

/// With every hasher busy (a login flood; here one hasher and no queue), the forms that
/// check or hash a new password answer like the login form does ("busy", try again), not
/// with a server error.
async fn a_busy_hasher_is_no_server_error_on_the_password_forms(backend: Backend) {
    let db = TestDb::fresh(backend).await;
    let app = TestApp::spawn_on(db, |cmd| {
        cmd.env("PORTAL_HASH_CONCURRENCY", "1")
            .env("PORTAL_HASH_QUEUE", "0");
    });
    let letter = add_some_member(&app.db, "daiwakenpo");
    let b = Browser::new(&app, DAIWA_HOST);
    login_ok(&b, &letter.user_id, &letter.password).await;
    let r = b
        .fill("/login/birth-date", &[("birth_date", &letter.birth_date)])
        .await;
    b.follow(r).await;
    let version = hidden_value(&b.get("/login/terms").await.body, "version").unwrap();
    let r = b.fill("/login/terms", &[("version", &version)]).await;
    b.follow(r).await;
    let chosen = fresh_user_id();
    let r = b
        .fill(
            "/login/user-id",
            &[("user_id", &chosen), ("method", "passkey")],
        )
        .await;
    assert!(b.follow(r).await.is_see_other("/login/password"));

    let password = fresh_password();
    let token = b.get("/login/password").await.csrf_token();
    let fields = [
        ("password", password.as_str()),
        ("password_confirm", password.as_str()),
        ("csrf_token", token.as_str()),
    ];
    let replies =
        futures_util::future::join_all((0..6).map(|_| b.post("/login/password", &fields))).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert!(
        statuses.iter().all(|s| *s < 500 || *s == 503),
        "statuses {statuses:?}; first failure: {}",
        replies
            .iter()
            .find(|r| r.status >= 500 && r.status != 503)
            .map(Reply::summary)
            .unwrap_or_default()
    );
}
