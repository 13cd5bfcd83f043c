//! What an admin may do to other admins, and what they keep once their own standing
//! changes: an API token acts with the narrower of its own role and its admin's current
//! role; disabling an admin revokes their tokens for good; nobody changes their own role,
//! state or factors; an invitation abandoned after the password leaves the admin invited
//! (the password alone never registers a factor); another admin (or the command line)
//! unlocks a locked admin and resets their factors; the demo accounts are made only on a
//! localhost installation unless asked for.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::admin::{api, api_token, invite, signed_in_admin};
use crate::browser_like::{mails_to, Browser, Reply, DAIWA_HOST};
use crate::db::{count, exec, now_unix, rows, value, Arg};
use crate::harness::{eventually, on_both_backends, stderr, stdout, Backend, TestApp, TestDb};
use crate::otp::{oathtool, shown_key};

const BOSS: &str = "boss@daiwa.example.jp";
const SUB: &str = "sub@daiwa.example.jp";
const DESK: &str = "desk@daiwa.example.jp";
const LATE: &str = "late@daiwa.example.jp";
/// The password `signed_in_admin` sets.
const PASSWORD: &str = "Console-pass-2026!";
/// The password an admin sets when they are set up a second time.
const NEW_PASSWORD: &str = "Console-pass-2027!";
/// `[login] invalid_credentials` of admin-ui/locales/ja.toml.
const INVALID_CREDENTIALS: &str = "メールアドレスまたはパスワードが正しくありません。";
/// The start of `[login] locked`.
const LOCKED: &str = "アカウントがロックされています";

on_both_backends!(
    a_demoted_admins_token_acts_with_the_operator_role,
    disabling_an_admin_revokes_their_tokens_for_good,
    an_admin_cannot_change_their_own_role_or_state,
    an_invitation_abandoned_before_the_factor_leaves_the_admin_invited,
    another_admin_unlocks_a_locked_admin_and_resets_their_factors,
    unlock_and_factor_reset_refuse_oneself_and_operators,
    the_command_line_unlocks_and_resets_a_societys_only_admin,
);

// --- helpers -------------------------------------------------------------------------------

/// The id of the admin with this address.
async fn admin_id(db: &TestDb, email: &str) -> String {
    value(
        db,
        "SELECT id FROM admins WHERE email = $1",
        &[Arg::Text(email)],
    )
    .await
    .unwrap_or_else(|| panic!("no admin {email}"))
}

/// One column of an admin's row, as text (None for NULL).
async fn admin_field(db: &TestDb, id: &str, column: &str) -> Option<String> {
    value(
        db,
        &format!("SELECT CAST({column} AS TEXT) FROM admins WHERE id = $1"),
        &[Arg::Text(id)],
    )
    .await
}

/// How many rows of `table` belong to the admin `id`.
async fn rows_of_admin(db: &TestDb, table: &str, id: &str) -> i64 {
    count(
        db,
        &format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table} WHERE admin_id = $1"),
        &[Arg::Text(id)],
    )
    .await
}

/// How many audit events `event` there are.
async fn audit_count(db: &TestDb, event: &str) -> i64 {
    count(
        db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE event = $1",
        &[Arg::Text(event)],
    )
    .await
}

/// Locks the admin for an hour, as five wrong passwords would.
async fn lock(db: &TestDb, id: &str) {
    let touched = exec(
        db,
        "UPDATE admins SET locked_until = $1, failed_logins = 5 WHERE id = $2",
        &[Arg::Int(now_unix() + 3600), Arg::Text(id)],
    )
    .await;
    assert_eq!(touched, 1);
}

/// The society's member count (as in admin.rs).
async fn member_count(db: &TestDb, slug: &str) -> i64 {
    let r = rows(
        db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM members m JOIN tenants t ON t.id = m.tenant_id \
         WHERE t.slug = $1",
        &[Arg::Text(slug)],
    )
    .await;
    r[0][0].as_deref().unwrap().parse().unwrap()
}

/// 「この内容に変更する」 on the 「管理者」 page for the admin `id`.
async fn change_admin(b: &Browser, id: &str, role: &str, state: &str) -> Reply {
    let page = b.get("/admin/admins").await;
    assert_eq!(page.status, 200, "{}", page.summary());
    b.post(
        &format!("/admin/admins/{id}"),
        &[
            ("role", role),
            ("state", state),
            ("csrf_token", &page.csrf_token()),
        ],
    )
    .await
}

/// The text of the page's notice (`role="status"`), or "".
fn notice(reply: &Reply) -> String {
    reply
        .text()
        .split("role=\"status\"")
        .nth(1)
        .and_then(|s| s.split("</div>").next())
        .unwrap_or_default()
        .to_owned()
}

/// A fresh browser sends the console's login form; the browser and the reply.
async fn console_login(app: &TestApp, email: &str, password: &str) -> (Browser, Reply) {
    let b = Browser::new(app, DAIWA_HOST);
    let page = b.get("/admin/login").await;
    assert_eq!(page.status, 200, "{}", page.summary());
    let reply = b
        .post(
            "/admin/login",
            &[
                ("email", email),
                ("password", password),
                ("csrf_token", &page.csrf_token()),
            ],
        )
        .await;
    (b, reply)
}

/// The login page again, with the message a wrong password gets.
fn assert_refused_at_login(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.summary());
    assert!(
        reply.text().contains(INVALID_CREDENTIALS),
        "{}",
        reply.summary()
    );
    assert!(
        reply.text().contains("管理者ログイン"),
        "{}",
        reply.summary()
    );
}

/// A full sign-in with the password and the next code of the app holding `key`; the
/// browser with the console open.
async fn sign_in_with_app(app: &TestApp, email: &str, password: &str, key: &str) -> Browser {
    let (b, mut reply) = console_login(app, email, password).await;
    assert!(
        reply.is_see_other("/admin/login/next"),
        "{}",
        reply.summary()
    );
    for _ in 0..5 {
        if reply.status != 303 {
            break;
        }
        reply = b.follow(reply).await;
    }
    assert_eq!(reply.status, 200, "{}", reply.summary());
    assert!(
        reply.text().contains("ワンタイムパスワード"),
        "{}",
        reply.summary()
    );
    let otp = b.get("/admin/login/otp").await;
    let ok = b
        .post(
            "/admin/login/otp",
            &[
                ("code", &oathtool(key, 30)),
                ("csrf_token", &otp.csrf_token()),
            ],
        )
        .await;
    assert!(ok.is_see_other("/admin/login/next"), "{}", ok.summary());
    let ok = b.follow(ok).await;
    assert!(ok.is_see_other("/admin/"), "{}", ok.summary());
    assert_eq!(b.get("/admin/").await.status, 200);
    b
}

/// Opens the invitation link of `token` and sets `password`; the reply to the form.
async fn set_password(b: &Browser, token: &str, email: &str, password: &str) -> Reply {
    let page = b.get(&format!("/admin/invite?token={token}")).await;
    assert_eq!(page.status, 200, "{}", page.summary());
    assert!(page.text().contains(email), "{}", page.summary());
    b.post(
        "/admin/invite",
        &[
            ("token", token),
            ("password", password),
            ("password_confirm", password),
            ("csrf_token", &page.csrf_token()),
        ],
    )
    .await
}

/// Follows the invitation link of `token` to its end: a password, an authenticator app
/// (the real `oathtool`), the console. The browser with the console open.
async fn accept_with_app(app: &TestApp, token: &str, email: &str, password: &str) -> Browser {
    let b = Browser::new(app, DAIWA_HOST);
    let reply = set_password(&b, token, email, password).await;
    assert!(
        reply.is_see_other("/admin/login/next"),
        "{}",
        reply.summary()
    );
    let reply = b.follow(reply).await;
    assert!(
        reply.is_see_other("/admin/login/totp"),
        "{}",
        reply.summary()
    );
    let setup = b.get("/admin/login/totp").await;
    assert_eq!(setup.status, 200, "{}", setup.summary());
    let key = shown_key(&setup);
    let reply = b
        .post(
            "/admin/login/totp",
            &[
                ("device_name", "事務所のスマホ"),
                ("code", &oathtool(&key, 0)),
                ("csrf_token", &setup.csrf_token()),
            ],
        )
        .await;
    assert!(
        reply.is_see_other("/admin/login/next"),
        "{}",
        reply.summary()
    );
    let reply = b.follow(reply).await;
    assert!(reply.is_see_other("/admin/"), "{}", reply.summary());
    let dashboard = b.get("/admin/").await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.summary());
    assert!(dashboard.text().contains("ダッシュボード"));
    b
}

/// The token of an invitation link (`…/admin/invite?token=<64 hex digits>`).
fn token_of(url: &str) -> String {
    let token: String = url
        .split_once("/admin/invite?token=")
        .unwrap_or_else(|| panic!("no invitation link in {url:?}"))
        .1
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    assert_eq!(token.len(), 64, "{url}");
    token
}

/// The tokens of every invitation link in `mails`, oldest first.
fn invitation_tokens(mails: &[String]) -> Vec<String> {
    let marker = "/admin/invite?token=";
    let mut tokens = Vec::new();
    for mail in mails {
        for (i, _) in mail.match_indices(marker) {
            let token: String = mail[i + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_hexdigit())
                .collect();
            if !token.is_empty() && !tokens.contains(&token) {
                tokens.push(token);
            }
        }
    }
    tokens
}

/// The newest invitation link mailed to `to` that is none of `known` (waits up to 10 s).
async fn new_invitation_token(b: &Browser, to: &str, known: &[String]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mails = mails_to(b, to, 0).await;
        if let Some(token) = invitation_tokens(&mails)
            .into_iter()
            .rev()
            .find(|t| !known.contains(t))
        {
            return token;
        }
        assert!(
            Instant::now() < deadline,
            "no new invitation link mailed to {to}: {mails:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// --- item 1: tokens keep no more than their admin's role ------------------------------------

async fn a_demoted_admins_token_acts_with_the_operator_role(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (boss, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", BOSS, "admin").await;
    let (sub, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", SUB, "admin").await;
    let sub_id = admin_id(&app.db, SUB).await;
    let token = api_token(&app.db, "daiwakenpo", SUB, None);
    let (status, _, json) = api(&app, DAIWA_HOST, "GET", "/admins", Some(&token), None).await;
    assert_eq!(status, 200, "{json}");

    // boss makes sub an operator in the console.
    let done = change_admin(&boss, &sub_id, "operator", "active").await;
    assert_eq!(done.status, 200, "{}", done.summary());
    assert_eq!(
        admin_field(&app.db, &sub_id, "role").await.as_deref(),
        Some("operator")
    );
    assert_eq!(sub.get("/admin/admins").await.status, 403);

    // The token made while sub was an admin now acts as an operator's.
    let (status, _, json) = api(&app, DAIWA_HOST, "GET", "/admins", Some(&token), None).await;
    assert_eq!(status, 403, "{json}");
    let (status, _, json) = api(
        &app,
        DAIWA_HOST,
        "PUT",
        &format!("/admins/{sub_id}"),
        Some(&token),
        Some(json!({"role": "admin", "disabled": false})),
    )
    .await;
    assert_eq!(status, 403, "the token promoted its own admin back: {json}");
    assert_eq!(
        admin_field(&app.db, &sub_id, "role").await.as_deref(),
        Some("operator")
    );
    let (status, _, json) = api(
        &app,
        DAIWA_HOST,
        "POST",
        "/tokens",
        Some(&token),
        Some(json!({"name": "x", "role": "admin", "days": 365})),
    )
    .await;
    assert_eq!(status, 403, "the token minted an admin token: {json}");
    // What an operator may do, it still does.
    let (status, _, json) = api(&app, DAIWA_HOST, "GET", "/members", Some(&token), None).await;
    assert_eq!(status, 200, "{json}");
}

async fn disabling_an_admin_revokes_their_tokens_for_good(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (boss, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", BOSS, "admin").await;
    let (sub, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", SUB, "admin").await;
    let sub_id = admin_id(&app.db, SUB).await;
    let token = api_token(&app.db, "daiwakenpo", SUB, None);
    let boss_token = api_token(&app.db, "daiwakenpo", BOSS, None);
    let (status, _, _) = api(&app, DAIWA_HOST, "GET", "/members", Some(&token), None).await;
    assert_eq!(status, 200);

    let done = change_admin(&boss, &sub_id, "admin", "disabled").await;
    assert_eq!(done.status, 200, "{}", done.summary());
    let (status, _, json) = api(&app, DAIWA_HOST, "GET", "/members", Some(&token), None).await;
    assert_eq!(status, 401, "{json}");
    assert_eq!(
        count(
            &app.db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM admin_api_tokens \
             WHERE admin_id = $1 AND revoked_at IS NULL",
            &[Arg::Text(&sub_id)],
        )
        .await,
        0,
        "a disabled admin's token is left unrevoked"
    );
    assert!(sub.get("/admin/").await.is_see_other("/admin/login"));
    // Only sub's tokens ended.
    let (status, _, _) = api(&app, DAIWA_HOST, "GET", "/members", Some(&boss_token), None).await;
    assert_eq!(status, 200);

    // Enabled again, sub does not get the old token back.
    let done = change_admin(&boss, &sub_id, "admin", "active").await;
    assert_eq!(done.status, 200, "{}", done.summary());
    let (status, _, json) = api(&app, DAIWA_HOST, "GET", "/members", Some(&token), None).await;
    assert_eq!(
        status, 401,
        "the old token came back with its admin: {json}"
    );
}

async fn an_admin_cannot_change_their_own_role_or_state(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (boss, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", BOSS, "admin").await;
    let (_sub, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", SUB, "admin").await;
    let boss_id = admin_id(&app.db, BOSS).await;

    // Another admin is there, so this is not the last-admin rule: it is oneself.
    let refused = change_admin(&boss, &boss_id, "operator", "active").await;
    assert_eq!(refused.status, 409, "{}", refused.summary());
    assert!(refused.text().contains("ご自身"), "{}", refused.summary());
    let refused = change_admin(&boss, &boss_id, "admin", "disabled").await;
    assert_eq!(refused.status, 409, "{}", refused.summary());
    assert!(refused.text().contains("ご自身"), "{}", refused.summary());

    let token = api_token(&app.db, "daiwakenpo", BOSS, None);
    let (status, _, json) = api(
        &app,
        DAIWA_HOST,
        "PUT",
        &format!("/admins/{boss_id}"),
        Some(&token),
        Some(json!({"role": "operator", "disabled": false})),
    )
    .await;
    assert_eq!(status, 409, "{json}");
    assert!(
        json["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("ご自身"),
        "{json}"
    );

    assert_eq!(
        admin_field(&app.db, &boss_id, "role").await.as_deref(),
        Some("admin")
    );
    assert_eq!(
        admin_field(&app.db, &boss_id, "state").await.as_deref(),
        Some("active")
    );
    assert_eq!(boss.get("/admin/").await.status, 200);
}

// --- item 6: an admin is active only with a factor ------------------------------------------

async fn an_invitation_abandoned_before_the_factor_leaves_the_admin_invited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (late_id, old_token) = invite(&app.db, "daiwakenpo", LATE, "admin");
    let b = Browser::new(&app, DAIWA_HOST);
    let reply = set_password(&b, &old_token, LATE, PASSWORD).await;
    assert!(
        reply.is_see_other("/admin/login/next"),
        "{}",
        reply.summary()
    );
    // The admin stops here, before registering a factor; `b` is not used again.
    assert_eq!(
        admin_field(&app.db, &late_id, "state").await.as_deref(),
        Some("invited")
    );

    // Whoever knows only the password gets what a wrong password gets, and no set-up of
    // an authenticator app.
    let (other, reply) = console_login(&app, LATE, PASSWORD).await;
    assert_refused_at_login(&reply);
    let setup = other.get("/admin/login/totp").await;
    assert_eq!(setup.status, 303, "{}", setup.summary());
    assert!(
        !setup.text().contains("スキャンできませんか"),
        "{}",
        setup.summary()
    );
    assert_ne!(other.get("/admin/").await.status, 200);
    assert_eq!(
        admin_field(&app.db, &late_id, "state").await.as_deref(),
        Some("invited")
    );
    // The link was spent with the password.
    let old = Browser::new(&app, DAIWA_HOST)
        .get(&format!("/admin/invite?token={old_token}"))
        .await;
    assert_eq!(old.status, 404, "{}", old.summary());
    assert!(
        old.text().contains("招待リンクが使えません"),
        "{}",
        old.summary()
    );

    // Another admin invites the same address again; the new link sets everything up.
    let (boss, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", BOSS, "admin").await;
    let page = boss.get("/admin/admins").await;
    assert_eq!(page.status, 200, "{}", page.summary());
    let invited = boss
        .post(
            "/admin/admins",
            &[
                ("email", LATE),
                ("role", "admin"),
                ("csrf_token", &page.csrf_token()),
            ],
        )
        .await;
    assert_eq!(invited.status, 200, "{}", invited.summary());
    assert!(notice(&invited).contains(LATE), "{}", invited.summary());
    let new_token = new_invitation_token(&boss, LATE, std::slice::from_ref(&old_token)).await;
    let late = accept_with_app(&app, &new_token, LATE, PASSWORD).await;
    assert_eq!(late.get("/admin/").await.status, 200);
    assert_eq!(
        admin_field(&app.db, &late_id, "state").await.as_deref(),
        Some("active")
    );

    // The API invites an invited admin afresh and refuses an active admin's address.
    let token = api_token(&app.db, "daiwakenpo", BOSS, None);
    let body = json!({"email": "late2@daiwa.example.jp", "role": "operator"});
    for attempt in ["first", "again"] {
        let (status, _, json) = api(
            &app,
            DAIWA_HOST,
            "POST",
            "/admins",
            Some(&token),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 201, "{attempt}: {json}");
    }
    assert_eq!(
        count(
            &app.db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM admins WHERE email = $1 AND state = 'invited'",
            &[Arg::Text("late2@daiwa.example.jp")],
        )
        .await,
        1
    );
    let (status, _, json) = api(
        &app,
        DAIWA_HOST,
        "POST",
        "/admins",
        Some(&token),
        Some(json!({"email": BOSS, "role": "operator"})),
    )
    .await;
    assert_eq!(status, 409, "{json}");
}

// --- item 7: unlock and factor reset of an admin ---------------------------------------------

async fn another_admin_unlocks_a_locked_admin_and_resets_their_factors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (boss, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", BOSS, "admin").await;
    let (desk, desk_app) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", DESK, "operator").await;
    let desk_id = admin_id(&app.db, DESK).await;
    let first_link = new_invitation_token(&boss, DESK, &[]).await;
    lock(&app.db, &desk_id).await;
    let (_, refused) = console_login(&app, DESK, PASSWORD).await;
    assert_eq!(refused.status, 403, "{}", refused.summary());
    assert!(refused.text().contains(LOCKED), "{}", refused.summary());

    // 「管理者」 offers both actions for desk.
    let unlock_path = format!("/admin/admins/{desk_id}/unlock");
    let reset_path = format!("/admin/admins/{desk_id}/reset-factors");
    let list = boss.get("/admin/admins").await;
    assert_eq!(list.status, 200, "{}", list.summary());
    let text = list.text();
    assert!(
        text.contains(&format!("href=\"{unlock_path}\"")),
        "{}",
        list.summary()
    );
    assert!(text.contains("ロック解除"), "{}", list.summary());
    assert!(
        text.contains(&format!("href=\"{reset_path}\"")),
        "{}",
        list.summary()
    );
    assert!(text.contains("二要素認証リセット"), "{}", list.summary());

    // 「ロック解除」: a confirmation naming desk, then the action.
    let confirm = boss.get(&unlock_path).await;
    assert_eq!(confirm.status, 200, "{}", confirm.summary());
    assert!(confirm.text().contains(DESK), "{}", confirm.summary());
    assert!(
        confirm.text().contains("ロック解除する"),
        "{}",
        confirm.summary()
    );
    let done = boss
        .post(&unlock_path, &[("csrf_token", &confirm.csrf_token())])
        .await;
    assert_eq!(done.status, 200, "{}", done.summary());
    assert!(notice(&done).contains(DESK), "{}", done.summary());
    assert_eq!(admin_field(&app.db, &desk_id, "locked_until").await, None);
    assert_eq!(
        admin_field(&app.db, &desk_id, "failed_logins")
            .await
            .as_deref(),
        Some("0")
    );
    assert_eq!(audit_count(&app.db, "admin_unlocked").await, 1);
    let told = eventually(Duration::from_secs(10), || async {
        mails_to(&boss, DESK, 0)
            .await
            .iter()
            .any(|m| m.contains("ロック解除"))
    })
    .await;
    assert!(
        told,
        "no unlock notice to desk: {:#?}",
        mails_to(&boss, DESK, 0).await
    );
    assert!(mails_to(&boss, DESK, 2).await.len() >= 2);
    // desk signs in again with the same password and app.
    let again = sign_in_with_app(&app, DESK, PASSWORD, &desk_app).await;

    // 「二要素認証リセット」: a confirmation, then the factors, sessions and standing go.
    let confirm = boss.get(&reset_path).await;
    assert_eq!(confirm.status, 200, "{}", confirm.summary());
    assert!(confirm.text().contains(DESK), "{}", confirm.summary());
    assert!(
        confirm.text().contains("二要素認証をリセットする"),
        "{}",
        confirm.summary()
    );
    let done = boss
        .post(&reset_path, &[("csrf_token", &confirm.csrf_token())])
        .await;
    assert_eq!(done.status, 200, "{}", done.summary());
    assert!(notice(&done).contains(DESK), "{}", done.summary());
    assert_eq!(rows_of_admin(&app.db, "admin_devices", &desk_id).await, 0);
    assert_eq!(rows_of_admin(&app.db, "admin_sessions", &desk_id).await, 0);
    assert_eq!(
        admin_field(&app.db, &desk_id, "state").await.as_deref(),
        Some("invited")
    );
    assert_eq!(audit_count(&app.db, "admin_factors_reset").await, 1);
    assert!(again.get("/admin/").await.is_see_other("/admin/login"));
    assert!(desk.get("/admin/").await.is_see_other("/admin/login"));
    let (_, refused) = console_login(&app, DESK, PASSWORD).await;
    assert_refused_at_login(&refused);

    // The new link mailed to desk sets a password and an app again.
    let link = new_invitation_token(&boss, DESK, std::slice::from_ref(&first_link)).await;
    let desk = accept_with_app(&app, &link, DESK, NEW_PASSWORD).await;
    assert_eq!(desk.get("/admin/").await.status, 200);
    assert_eq!(
        admin_field(&app.db, &desk_id, "state").await.as_deref(),
        Some("active")
    );
}

async fn unlock_and_factor_reset_refuse_oneself_and_operators(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (boss, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", BOSS, "admin").await;
    let (desk, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", DESK, "operator").await;
    let boss_id = admin_id(&app.db, BOSS).await;
    let desk_id = admin_id(&app.db, DESK).await;
    let boss_token = api_token(&app.db, "daiwakenpo", BOSS, None);
    let desk_token = api_token(&app.db, "daiwakenpo", DESK, None);

    // An operator may do neither.
    let refused = desk.get(&format!("/admin/admins/{boss_id}/unlock")).await;
    assert_eq!(refused.status, 403, "{}", refused.summary());

    // Nobody resets their own factors.
    let page = boss.get("/admin/admins").await;
    assert_eq!(page.status, 200, "{}", page.summary());
    let refused = boss
        .post(
            &format!("/admin/admins/{boss_id}/reset-factors"),
            &[("csrf_token", &page.csrf_token())],
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.summary());
    assert!(refused.text().contains("ご自身"), "{}", refused.summary());
    assert_eq!(rows_of_admin(&app.db, "admin_devices", &boss_id).await, 1);
    assert_eq!(
        admin_field(&app.db, &boss_id, "state").await.as_deref(),
        Some("active")
    );

    // The API: an operator token is refused (asked while desk is not locked, so that
    // the refusal is about the role), an admin token acts.
    for action in ["unlock", "reset-factors"] {
        let (status, _, json) = api(
            &app,
            DAIWA_HOST,
            "POST",
            &format!("/admins/{boss_id}/{action}"),
            Some(&desk_token),
            None,
        )
        .await;
        assert_eq!(status, 403, "{action}: {json}");
    }
    assert_eq!(rows_of_admin(&app.db, "admin_devices", &boss_id).await, 1);
    lock(&app.db, &desk_id).await;
    let (status, _, json) = api(
        &app,
        DAIWA_HOST,
        "POST",
        &format!("/admins/{desk_id}/unlock"),
        Some(&boss_token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["state"], "active", "{json}");
    assert_eq!(admin_field(&app.db, &desk_id, "locked_until").await, None);
    let (status, _, json) = api(
        &app,
        DAIWA_HOST,
        "POST",
        &format!("/admins/{desk_id}/reset-factors"),
        Some(&boss_token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["state"], "invited", "{json}");
    assert_eq!(rows_of_admin(&app.db, "admin_devices", &desk_id).await, 0);
    assert_eq!(
        admin_field(&app.db, &desk_id, "state").await.as_deref(),
        Some("invited")
    );
}

async fn the_command_line_unlocks_and_resets_a_societys_only_admin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (boss, boss_app) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", BOSS, "admin").await;
    let boss_id = admin_id(&app.db, BOSS).await;
    lock(&app.db, &boss_id).await;
    let (_, refused) = console_login(&app, BOSS, PASSWORD).await;
    assert_eq!(refused.status, 403, "{}", refused.summary());

    let out = app.db.run(&["admin", "unlock", "daiwakenpo", BOSS]);
    assert!(out.status.success(), "admin unlock: {}", stderr(&out));
    assert_eq!(admin_field(&app.db, &boss_id, "locked_until").await, None);
    assert_eq!(
        admin_field(&app.db, &boss_id, "failed_logins")
            .await
            .as_deref(),
        Some("0")
    );
    let again = sign_in_with_app(&app, BOSS, PASSWORD, &boss_app).await;

    let out = app.db.run(&["admin", "reset-factors", "daiwakenpo", BOSS]);
    assert!(
        out.status.success(),
        "admin reset-factors: {}",
        stderr(&out)
    );
    let json: Value = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    let url = json["setup_url"].as_str().unwrap_or_default();
    assert!(url.contains("/admin/invite?token="), "{json}");
    assert_eq!(rows_of_admin(&app.db, "admin_devices", &boss_id).await, 0);
    assert_eq!(
        admin_field(&app.db, &boss_id, "state").await.as_deref(),
        Some("invited")
    );
    assert!(again.get("/admin/").await.is_see_other("/admin/login"));
    assert!(boss.get("/admin/").await.is_see_other("/admin/login"));
    let boss = accept_with_app(&app, &token_of(url), BOSS, NEW_PASSWORD).await;
    assert_eq!(boss.get("/admin/").await.status, 200);
    assert_eq!(
        admin_field(&app.db, &boss_id, "state").await.as_deref(),
        Some("active")
    );

    // An address that is nobody's: a failure, told on standard error.
    for command in ["unlock", "reset-factors"] {
        let out = app
            .db
            .run(&["admin", command, "daiwakenpo", "nobody@daiwa.example.jp"]);
        assert!(!out.status.success(), "{command}: {}", stdout(&out));
        assert!(!stderr(&out).trim().is_empty(), "{command}: no message");
    }
}

// --- item 11: demo accounts only on localhost -----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_accounts_are_made_only_on_localhost_unless_asked_for() {
    // A real domain, PORTAL_DEMO not set: no demo accounts.
    let app = TestApp::spawn_on(TestDb::fresh(Backend::Sqlite).await, |cmd| {
        cmd.env_remove("PORTAL_DEMO");
        cmd.env("PORTAL_BASE_DOMAIN", "portal.example.jp");
    });
    assert_eq!(
        member_count(&app.db, "daiwakenpo").await,
        0,
        "{}",
        app.log()
    );
    assert_eq!(
        count(&app.db, "SELECT CAST(COUNT(*) AS TEXT) FROM admins", &[]).await,
        0,
        "{}",
        app.log()
    );
    assert!(
        !app.log().contains("demo admin invitation"),
        "{}",
        app.log()
    );
    drop(app);

    // localhost (the default), PORTAL_DEMO not set: the demo set-up.
    let app = TestApp::spawn_on(TestDb::fresh(Backend::Sqlite).await, |cmd| {
        cmd.env_remove("PORTAL_DEMO");
    });
    assert_eq!(
        member_count(&app.db, "daiwakenpo").await,
        1,
        "{}",
        app.log()
    );
    assert!(
        app.log().contains("demo admin invitation of daiwakenpo"),
        "{}",
        app.log()
    );
    drop(app);

    // A real domain with PORTAL_DEMO=true: asked for, made.
    let app = TestApp::spawn_on(TestDb::fresh(Backend::Sqlite).await, |cmd| {
        cmd.env("PORTAL_BASE_DOMAIN", "portal.example.jp");
        cmd.env("PORTAL_DEMO", "true");
    });
    assert_eq!(
        member_count(&app.db, "daiwakenpo").await,
        1,
        "{}",
        app.log()
    );
    assert!(
        app.log().contains("demo admin invitation of daiwakenpo"),
        "{}",
        app.log()
    );
}
