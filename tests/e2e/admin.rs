//! The society admin console and its JSON API: invitations, sign-in with a password and an
//! authenticator app (the real `oathtool`), member actions through the console, the API's
//! refusals (no token, a member session, another society's token, an operator on admin-only
//! endpoints), invalid input that changes nothing, and the demo set-up.

use serde_json::Value;

use crate::browser_like::{add_some_member, login, login_ok, Browser, DAIWA_HOST, KANEKA_HOST};
use crate::db::{exec, rows, Arg};
use crate::harness::{on_both_backends, stderr, stdout, Backend, TestApp, TestDb};
use crate::otp::{oathtool, shown_key};

/// `portal admin create`: the invitation's admin id and token.
pub(crate) fn invite(db: &TestDb, slug: &str, email: &str, role: &str) -> (String, String) {
    let out = db.run(&["admin", "create", slug, email, "--role", role]);
    assert!(out.status.success(), "admin create: {}", stderr(&out));
    let json: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let url = json["setup_url"].as_str().unwrap();
    assert!(url.contains("/admin/invite?token="), "{url}");
    let token = url.rsplit_once("token=").unwrap().1.to_owned();
    (json["admin_id"].as_str().unwrap().to_owned(), token)
}

/// The authenticator app an admin registered: its key (what the app holds; the value
/// derefs to it) and the code that proved the set-up, which is spent.
pub(crate) struct AdminApp {
    key: String,
    setup_code: String,
}

impl std::ops::Deref for AdminApp {
    type Target = str;
    fn deref(&self) -> &str {
        &self.key
    }
}

/// An admin that accepted the invitation and registered an app: (browser signed in to the
/// console, the app).
pub(crate) async fn signed_in_admin(
    app: &TestApp,
    host: &str,
    slug: &str,
    email: &str,
    role: &str,
) -> (Browser, AdminApp) {
    let (_, token) = invite(&app.db, slug, email, role);
    let b = Browser::new(app, host);
    let page = b.get(&format!("/admin/invite?token={token}")).await;
    assert_eq!(page.status, 200, "{}", page.summary());
    assert!(page.text().contains(email), "{}", page.summary());
    let password = "Console-pass-2026!";
    let reply = b
        .post(
            "/admin/invite",
            &[
                ("token", &token),
                ("password", password),
                ("password_confirm", password),
                ("csrf_token", &page.csrf_token()),
            ],
        )
        .await;
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
    let code = oathtool(&key, 0);
    let reply = b
        .post(
            "/admin/login/totp",
            &[
                ("device_name", "事務所のスマホ"),
                ("code", &code),
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
    (
        b,
        AdminApp {
            key,
            setup_code: code,
        },
    )
}

/// `portal admin token`: a bearer token.
pub(crate) fn api_token(db: &TestDb, slug: &str, email: &str, role: Option<&str>) -> String {
    named_token(db, slug, email, "script", role)
}

fn named_token(db: &TestDb, slug: &str, email: &str, name: &str, role: Option<&str>) -> String {
    let mut args = vec!["admin", "token", slug, email, "--name", name];
    if let Some(role) = role {
        args.extend(["--role", role]);
    }
    let out = db.run(&args);
    assert!(out.status.success(), "admin token: {}", stderr(&out));
    let json: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    json["token"].as_str().unwrap().to_owned()
}

/// A request to the API on `host`, with `token` if given.
pub(crate) async fn api(
    app: &TestApp,
    host: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String, Value) {
    let client = reqwest::Client::builder()
        .resolve(host, app.member)
        .build()
        .unwrap();
    let url = format!("http://{host}:{}/admin/api/v1{path}", app.member.port());
    let mut req = match method {
        "GET" => client.get(url),
        "PUT" => client.put(url),
        "DELETE" => client.delete(url),
        _ => client.post(url),
    };
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, content_type, json)
}

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

on_both_backends!(
    an_invited_admin_sets_up_an_app_signs_in_and_registers_a_member,
    the_api_refuses_whoever_may_not_act,
    invalid_input_gets_field_problems_and_changes_nothing,
    console_actions_unlock_reset_and_disable_a_member,
    admins_and_tokens_are_managed_by_admins_only,
    search_finds_by_name_id_and_address_and_a_batch_prints_one_letter_each,
    an_invited_admin_chooses_a_passkey_and_signs_in_with_it,
);

async fn an_invited_admin_sets_up_an_app_signs_in_and_registers_a_member(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (b, key) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "clerk@daiwa.example.jp",
        "admin",
    )
    .await;
    let dashboard = b.get("/admin/").await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.summary());
    assert!(dashboard.text().contains("ダッシュボード"));
    assert_eq!(dashboard.headers["cache-control"], "no-store");
    // A second sign-in: password, then the next code of the app.
    let out = b
        .post("/admin/logout", &[("csrf_token", &dashboard.csrf_token())])
        .await;
    assert!(
        out.is_see_other("/admin/login?logged_out=1"),
        "{}",
        out.summary()
    );
    assert!(b.get("/admin/").await.is_see_other("/admin/login"));
    let page = b.get("/admin/login").await;
    let reply = b
        .post(
            "/admin/login",
            &[
                ("email", "clerk@daiwa.example.jp"),
                ("password", "wrong-password-1234"),
                ("csrf_token", &page.csrf_token()),
            ],
        )
        .await;
    assert!(
        reply
            .text()
            .contains("メールアドレスまたはパスワードが正しくありません"),
        "{}",
        reply.summary()
    );
    let reply = b
        .post(
            "/admin/login",
            &[
                ("email", "clerk@daiwa.example.jp"),
                ("password", "Console-pass-2026!"),
                ("csrf_token", &page.csrf_token()),
            ],
        )
        .await;
    assert!(
        reply.is_see_other("/admin/login/next"),
        "{}",
        reply.summary()
    );
    let reply = b.follow(b.follow(b.follow(reply).await).await).await;
    // The app's code of the set-up is spent; the next time step's code is accepted.
    assert_eq!(reply.status, 200, "{}", reply.summary());
    assert!(
        reply.text().contains("ワンタイムパスワード"),
        "{}",
        reply.summary()
    );
    let otp = b.get("/admin/login/otp").await;
    let replayed = b
        .post(
            "/admin/login/otp",
            &[("code", &key.setup_code), ("csrf_token", &otp.csrf_token())],
        )
        .await;
    assert_eq!(
        replayed.status,
        200,
        "a spent code is refused: {}",
        replayed.summary()
    );
    assert!(replayed
        .text()
        .contains("ワンタイムパスワードが正しくありません"));
    let ok = b
        .post(
            "/admin/login/otp",
            &[
                ("code", &oathtool(&key, 30)),
                ("csrf_token", &otp.csrf_token()),
            ],
        )
        .await;
    assert!(ok.is_see_other("/admin/login/next"), "{}", ok.summary());
    assert!(b.follow(ok).await.is_see_other("/admin/"));

    // 「会員登録」: credentials shown once, the letter prints them, the member signs in.
    let form = b.get("/admin/members/new").await;
    let created = b
        .post(
            "/admin/members/new",
            &[
                ("display_name", "大和 花子"),
                ("name_kana", "ダイワ ハナコ"),
                ("birth_date", "1985-06-15"),
                ("email", "hanako@example.jp"),
                ("card_symbol", "12"),
                ("card_number", "3456"),
                ("csrf_token", &form.csrf_token()),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.summary());
    assert_eq!(created.headers["cache-control"], "no-store");
    let body = created.text();
    let letter_url = body
        .split("href=\"/admin/letters/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(|batch| format!("/admin/letters/{batch}"))
        .unwrap_or_else(|| panic!("a letter link: {}", created.summary()));
    let letter = b.get(&letter_url).await;
    assert_eq!(letter.status, 200, "{}", letter.summary());
    assert_eq!(letter.headers["cache-control"], "no-store");
    let user_id = rows(
        &app.db,
        "SELECT user_id FROM members WHERE display_name = $1",
        &[Arg::Text("大和 花子")],
    )
    .await[0][0]
        .clone()
        .unwrap();
    assert!(letter.text().contains(&user_id), "{}", letter.summary());
    assert!(body.contains(&user_id));
    let password = body
        .split("id=\"temporary-password\"")
        .nth(1)
        .and_then(|s| s.split('>').nth(1))
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| panic!("the temporary password is shown: {}", created.summary()))
        .trim()
        .to_owned();
    assert!(letter.text().contains(&password));
    let member = Browser::new(&app, DAIWA_HOST);
    let next = login_ok(&member, &user_id, &password).await;
    assert!(next.is_see_other("/login/birth-date"), "{}", next.summary());

    // The same admin means nothing on the other society's host.
    let other = b.at(KANEKA_HOST);
    assert!(other.get("/admin/").await.is_see_other("/admin/login"));
    // A member session never opens the console.
    assert!(member.get("/admin/").await.is_see_other("/admin/login"));
}

async fn the_api_refuses_whoever_may_not_act(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_b, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "boss@daiwa.example.jp",
        "admin",
    )
    .await;
    let (_o, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "desk@daiwa.example.jp",
        "operator",
    )
    .await;
    let admin = api_token(&app.db, "daiwakenpo", "boss@daiwa.example.jp", None);
    let operator = api_token(&app.db, "daiwakenpo", "desk@daiwa.example.jp", None);
    // An operator cannot make an admin token.
    let out = app.db.run(&[
        "admin",
        "token",
        "daiwakenpo",
        "desk@daiwa.example.jp",
        "--name",
        "x",
        "--role",
        "admin",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let (status, ct, json) = api(&app, DAIWA_HOST, "GET", "/members", None, None).await;
    assert_eq!(status, 401);
    assert_eq!(ct, "application/problem+json");
    assert!(
        json["type"].as_str().unwrap().ends_with("/unauthorized"),
        "{json}"
    );
    let (status, _, _) = api(&app, DAIWA_HOST, "GET", "/members", Some("pat_0000"), None).await;
    assert_eq!(status, 401);
    // The token of one society sent to the other's host.
    let (status, _, _) = api(&app, KANEKA_HOST, "GET", "/members", Some(&admin), None).await;
    assert_eq!(status, 401);
    // A member's session cookie is no credential for the API.
    let member = crate::browser_like::signed_in_member(&app, "daiwakenpo").await;
    let session = member
        .browser
        .cookie("portal_session")
        .expect("a member session");
    let client = reqwest::Client::builder()
        .resolve(DAIWA_HOST, app.member)
        .build()
        .unwrap();
    let resp = client
        .get(format!(
            "http://{DAIWA_HOST}:{}/admin/api/v1/members",
            app.member.port()
        ))
        .header("cookie", format!("portal_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    let (status, _, json) = api(&app, DAIWA_HOST, "GET", "/members", Some(&operator), None).await;
    assert_eq!(status, 200, "{json}");
    assert!(!json["members"].as_array().unwrap().is_empty());
    let (status, ct, json) = api(&app, DAIWA_HOST, "GET", "/admins", Some(&operator), None).await;
    assert_eq!(status, 403, "{json}");
    assert_eq!(ct, "application/problem+json");
    let (status, _, json) = api(&app, DAIWA_HOST, "GET", "/admins", Some(&admin), None).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json.as_array().unwrap().len(), 2);

    // A revoked token and an expired one are refused.
    exec(
        &app.db,
        "UPDATE admin_api_tokens SET revoked_at = 1 WHERE admin_id IN \
         (SELECT id FROM admins WHERE email = $1)",
        &[Arg::Text("desk@daiwa.example.jp")],
    )
    .await;
    let (status, _, _) = api(&app, DAIWA_HOST, "GET", "/members", Some(&operator), None).await;
    assert_eq!(status, 401);
    let expiring = named_token(
        &app.db,
        "daiwakenpo",
        "boss@daiwa.example.jp",
        "expiring",
        None,
    );
    let (status, _, _) = api(&app, DAIWA_HOST, "GET", "/members", Some(&expiring), None).await;
    assert_eq!(status, 200);
    exec(
        &app.db,
        "UPDATE admin_api_tokens SET expires_at = 1 WHERE name = $1",
        &[Arg::Text("expiring")],
    )
    .await;
    let (status, _, _) = api(&app, DAIWA_HOST, "GET", "/members", Some(&expiring), None).await;
    assert_eq!(status, 401);

    // The documents are served.
    let page = app.get(DAIWA_HOST, "/admin/api/openapi.json").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("\"openapi\""));
}

async fn invalid_input_gets_field_problems_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (b, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "boss@daiwa.example.jp",
        "admin",
    )
    .await;
    let token = api_token(&app.db, "daiwakenpo", "boss@daiwa.example.jp", None);
    let before = member_count(&app.db, "daiwakenpo").await;
    let (status, ct, json) = api(
        &app,
        DAIWA_HOST,
        "POST",
        "/members",
        Some(&token),
        Some(serde_json::json!({
            "display_name": "名前\u{0007}",
            "birth_date": "2999-01-01",
            "email": "no-domain",
        })),
    )
    .await;
    assert_eq!(status, 422, "{json}");
    assert_eq!(ct, "application/problem+json");
    let fields: Vec<&str> = json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["display_name", "birth_date", "email"], "{json}");
    assert!(
        json["detail"]
            .as_str()
            .unwrap()
            .chars()
            .any(|c| c > '\u{3000}'),
        "Japanese: {json}"
    );
    // Wrong types: a problem document too.
    let (status, ct, _) = api(
        &app,
        DAIWA_HOST,
        "POST",
        "/members",
        Some(&token),
        Some(serde_json::json!({"display_name": 5})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(ct, "application/problem+json");
    assert_eq!(member_count(&app.db, "daiwakenpo").await, before);

    // The console form shows the problems next to the fields and registers nobody.
    let form = b.get("/admin/members/new").await;
    let page = b
        .post(
            "/admin/members/new",
            &[
                ("display_name", ""),
                ("birth_date", "1980/13/40"),
                ("email", "a@b"),
                ("csrf_token", &form.csrf_token()),
            ],
        )
        .await;
    assert_eq!(page.status, 400, "{}", page.summary());
    assert!(page.body.contains("role=\"alert\""));
    assert_eq!(member_count(&app.db, "daiwakenpo").await, before);
    // A console POST without its CSRF token is refused and changes nothing.
    let refused = b
        .post(
            "/admin/members/new",
            &[
                ("display_name", "名前"),
                ("birth_date", "1980-01-01"),
                ("email", "x@example.jp"),
            ],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(member_count(&app.db, "daiwakenpo").await, before);
}

async fn console_actions_unlock_reset_and_disable_a_member(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (b, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "boss@daiwa.example.jp",
        "admin",
    )
    .await;
    let letter = add_some_member(&app.db, "daiwakenpo");
    let member = Browser::new(&app, DAIWA_HOST);
    for _ in 0..5 {
        login(&member, &letter.user_id, "wrong-password").await;
    }
    let locked = login(&member, &letter.user_id, &letter.password).await;
    assert_eq!(locked.status, 403, "locked: {}", locked.summary());
    let id = rows(
        &app.db,
        "SELECT id FROM members WHERE user_id = $1",
        &[Arg::Text(&letter.user_id)],
    )
    .await[0][0]
        .clone()
        .unwrap();
    // The list finds the member as locked; the member page tells why, in words.
    let list = b.get("/admin/members?state=locked").await;
    assert!(list.text().contains(&letter.user_id), "{}", list.summary());
    let detail = b.get(&format!("/admin/members/{id}")).await.text();
    assert!(detail.contains("パスワードの誤り"), "{detail}");
    assert!(!detail.contains("wrong password"), "{detail}");
    // 「ロック解除」: a confirmation page naming the member, then the action.
    let confirm = b.get(&format!("/admin/members/{id}/unlock")).await;
    assert_eq!(confirm.status, 200, "{}", confirm.summary());
    assert!(confirm.text().contains(&letter.name));
    let done = b
        .post(
            &format!("/admin/members/{id}/unlock"),
            &[("csrf_token", &confirm.csrf_token())],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.summary());
    let next = login_ok(&member, &letter.user_id, &letter.password).await;
    assert!(next.is_see_other("/login/birth-date"), "{}", next.summary());
    // 「利用停止」: the member cannot sign in any more.
    let confirm = b.get(&format!("/admin/members/{id}/disable")).await;
    b.post(
        &format!("/admin/members/{id}/disable"),
        &[("csrf_token", &confirm.csrf_token())],
    )
    .await;
    let refused = login(&member, &letter.user_id, &letter.password).await;
    assert!(
        !refused.is_see_other("/login/next"),
        "{}",
        refused.summary()
    );
    let events = rows(
        &app.db,
        "SELECT event FROM audit_events WHERE member_id = $1 AND actor_type = 'admin' ORDER BY created_at",
        &[Arg::Text(&id)],
    )
    .await;
    let events: Vec<String> = events.into_iter().map(|r| r[0].clone().unwrap()).collect();
    assert!(events.contains(&"member_unlocked".to_owned()), "{events:?}");
    assert!(events.contains(&"member_disabled".to_owned()), "{events:?}");
    // The audit export is CSV with a BOM and the rows.
    let csv = b.get("/admin/audit.csv").await;
    assert_eq!(csv.status, 200);
    assert!(csv.body.starts_with('\u{feff}'));
    assert!(csv.body.contains("member_disabled"), "{}", csv.summary());
    // The export narrowed to one admin: their actions only, not the member's own.
    let boss = rows(
        &app.db,
        "SELECT id FROM admins WHERE email = 'boss@daiwa.example.jp'",
        &[],
    )
    .await[0][0]
        .clone()
        .unwrap();
    let page = b.get("/admin/audit").await;
    assert!(page.body.contains(&format!("value=\"admin:{boss}\"")));
    let csv = b.get(&format!("/admin/audit.csv?actor=admin:{boss}")).await;
    assert!(csv.body.contains("member_disabled"), "{}", csv.summary());
    assert!(!csv.body.contains("login_failed"), "{}", csv.summary());
    let unknown = b.get("/admin/audit?actor=admin:nobody").await;
    assert!(
        unknown.body.contains("role=\"alert\""),
        "{}",
        unknown.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_accounts_exist_only_in_the_demo_set_up() {
    // A new installation with the demo on: one demo member and one invitation per seed
    // tenant, printed in the log.
    let db = TestDb::fresh(Backend::Sqlite).await;
    let app = TestApp::spawn_on(db, |cmd| {
        cmd.env("PORTAL_DEMO", "true");
    });
    assert_eq!(member_count(&app.db, "daiwakenpo").await, 1);
    assert!(
        app.log().contains("demo admin invitation of daiwakenpo"),
        "{}",
        app.log()
    );
    let db = std::sync::Arc::clone(&app.db);
    drop(app);
    // A tenant applied afterwards gets no member, now or at the next start.
    let file = std::fs::read_to_string(crate::harness::repo_root().join("tenants/daiwakenpo.toml"))
        .unwrap()
        .replace("slug = \"daiwakenpo\"", "slug = \"laterkenpo\"")
        .replace("www.daiwakenpo.localhost", "www.laterkenpo.localhost");
    let out = db.run_with_input(&["tenant", "apply", "-"], &file);
    assert!(out.status.success(), "{}", stderr(&out));
    let app = TestApp::spawn_on(db, |cmd| {
        cmd.env("PORTAL_DEMO", "true");
    });
    assert_eq!(member_count(&app.db, "laterkenpo").await, 0);
    assert_eq!(member_count(&app.db, "daiwakenpo").await, 1);
    drop(app);
    // PORTAL_DEMO=false: none at all.
    let db = TestDb::fresh(Backend::Sqlite).await;
    let app = TestApp::spawn_on(db, |cmd| {
        cmd.env("PORTAL_DEMO", "false");
    });
    assert_eq!(member_count(&app.db, "daiwakenpo").await, 0);
    assert!(!app.log().contains("demo"), "{}", app.log());
}

async fn admins_and_tokens_are_managed_by_admins_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (boss, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "boss@daiwa.example.jp",
        "admin",
    )
    .await;
    let (desk, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "desk@daiwa.example.jp",
        "operator",
    )
    .await;
    // An operator sees neither page nor the links to them.
    let dashboard = desk.get("/admin/").await;
    assert!(!dashboard.body.contains("href=\"/admin/admins\""));
    assert_eq!(desk.get("/admin/admins").await.status, 403);
    assert_eq!(desk.get("/admin/tokens").await.status, 403);

    // An admin cannot demote themselves (nor would the society keep an active admin); the
    // change is refused and nothing changes.
    let page = boss.get("/admin/admins").await;
    assert_eq!(page.status, 200, "{}", page.summary());
    let boss_id = crate::db::value(
        &app.db,
        "SELECT id FROM admins WHERE email = $1",
        &[Arg::Text("boss@daiwa.example.jp")],
    )
    .await
    .unwrap();
    let refused = boss
        .post(
            &format!("/admin/admins/{boss_id}"),
            &[
                ("role", "operator"),
                ("state", "active"),
                ("csrf_token", &page.csrf_token()),
            ],
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.summary());
    assert!(refused.text().contains("管理者"), "{}", refused.summary());
    let role = crate::db::value(
        &app.db,
        "SELECT role FROM admins WHERE id = $1",
        &[Arg::Text(&boss_id)],
    )
    .await;
    assert_eq!(role.as_deref(), Some("admin"));

    // Disabling the operator ends their console session at once.
    let desk_id = crate::db::value(
        &app.db,
        "SELECT id FROM admins WHERE email = $1",
        &[Arg::Text("desk@daiwa.example.jp")],
    )
    .await
    .unwrap();
    let done = boss
        .post(
            &format!("/admin/admins/{desk_id}"),
            &[
                ("role", "operator"),
                ("state", "disabled"),
                ("csrf_token", &page.csrf_token()),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.summary());
    assert!(desk.get("/admin/").await.is_see_other("/admin/login"));

    // A token made in the console is shown once and works; revoked, it stops.
    let tokens = boss.get("/admin/tokens").await;
    let created = boss
        .post(
            "/admin/tokens",
            &[
                ("name", "会員システム"),
                ("role", "operator"),
                ("days", "30"),
                ("csrf_token", &tokens.csrf_token()),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.summary());
    let token = created
        .body
        .split("id=\"api-token\" class=\"secret\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| panic!("the token is shown: {}", created.summary()))
        .to_owned();
    let (status, _, _) = api(&app, DAIWA_HOST, "GET", "/members", Some(&token), None).await;
    assert_eq!(status, 200);
    // An operator token may not manage tokens or admins.
    let (status, _, _) = api(&app, DAIWA_HOST, "GET", "/tokens", Some(&token), None).await;
    assert_eq!(status, 403);
    let boss_token = api_token(&app.db, "daiwakenpo", "boss@daiwa.example.jp", None);
    let (status, _, list) = api(&app, DAIWA_HOST, "GET", "/tokens", Some(&boss_token), None).await;
    assert_eq!(status, 200, "{list}");
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "会員システム")
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .unwrap();
    let confirm = boss.get(&format!("/admin/tokens/{id}/revoke")).await;
    assert_eq!(confirm.status, 200, "{}", confirm.summary());
    let revoked = boss
        .post(
            &format!("/admin/tokens/{id}/revoke"),
            &[("csrf_token", &confirm.csrf_token())],
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.summary());
    let (status, _, _) = api(&app, DAIWA_HOST, "GET", "/members", Some(&token), None).await;
    assert_eq!(status, 401);
    // The API invites an admin and refuses a role wider than the token's.
    let (status, _, json) = api(
        &app,
        DAIWA_HOST,
        "POST",
        "/admins",
        Some(&boss_token),
        Some(serde_json::json!({"email": "new@daiwa.example.jp", "role": "operator"})),
    )
    .await;
    assert_eq!(status, 201, "{json}");
    // An address still invited is invited afresh; an active admin's address is taken.
    let (status, _, json) = api(
        &app,
        DAIWA_HOST,
        "POST",
        "/admins",
        Some(&boss_token),
        Some(serde_json::json!({"email": "new@daiwa.example.jp", "role": "operator"})),
    )
    .await;
    assert_eq!(status, 201, "{json}");
    let (status, _, json) = api(
        &app,
        DAIWA_HOST,
        "POST",
        "/admins",
        Some(&boss_token),
        Some(serde_json::json!({"email": "boss@daiwa.example.jp", "role": "operator"})),
    )
    .await;
    assert_eq!(status, 409, "{json}");
}

/// schemathesis (from pip, in the test command's Python environment) fuzzes every
/// endpoint of the committed OpenAPI document with an admin token: no 5xx, and every
/// answer matches the document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_schema() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_b, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "boss@daiwa.example.jp",
        "admin",
    )
    .await;
    add_some_member(&app.db, "daiwakenpo");
    let token = api_token(&app.db, "daiwakenpo", "boss@daiwa.example.jp", None);
    let python = std::env::var("PORTAL_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let st = std::path::Path::new(&python).with_file_name("schemathesis");
    assert!(
        st.exists(),
        "schemathesis is needed next to {python} (bash tests/run installs tests/api/requirements.txt)"
    );
    let schema = crate::harness::repo_root().join("docs/admin-api.json");
    let out = std::process::Command::new(st)
        .arg("run")
        .arg(&schema)
        .args(["--url", &format!("http://127.0.0.1:{}/admin/api/v1", app.member.port())])
        .args(["-H", &format!("Host: {DAIWA_HOST}")])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--max-examples", "30", "--seed", "1", "--phases", "examples,fuzzing"])
        .args(["--request-timeout", "10"])
        .env("NO_COLOR", "1")
        .current_dir(app.db.data_dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running schemathesis");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
}

async fn search_finds_by_name_id_and_address_and_a_batch_prints_one_letter_each(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (b, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "boss@daiwa.example.jp",
        "admin",
    )
    .await;
    let hanako = crate::browser_like::add_member(
        &app.db,
        "daiwakenpo",
        "鈴木 花子",
        "1975-02-03",
        "hanako.s@example.jp",
    );
    let jiro = crate::browser_like::add_member(
        &app.db,
        "daiwakenpo",
        "佐藤 次郎",
        "1990-10-10",
        "jiro@example.jp",
    );
    let search = |q: &str| {
        let q = form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>();
        let b = b.clone();
        async move { b.get(&format!("/admin/members?q={q}")).await.text() }
    };
    let found = search("花子").await;
    assert!(found.contains(&hanako.user_id) && !found.contains(&jiro.user_id));
    // A name typed with or without the space, of either width, finds the same member.
    for typed in ["鈴木花子", "鈴木　花子", "鈴木 花子"] {
        assert!(search(typed).await.contains(&hanako.user_id), "{typed}");
    }
    assert!(!search("花子鈴木").await.contains(&hanako.user_id));
    let found = search(&jiro.user_id[..5]).await;
    assert!(found.contains(&jiro.user_id), "{found}");
    let found = search("HANAKO.S@").await;
    assert!(
        found.contains(&hanako.user_id),
        "an address is found whatever its case"
    );
    // LIKE's wildcards are text like any other.
    let found = search("%").await;
    assert!(!found.contains(&hanako.user_id) && !found.contains(&jiro.user_id));
    let by_date = b.get("/admin/members?birth_date=1990-10-10").await.text();
    assert!(by_date.contains(&jiro.user_id) && !by_date.contains(&hanako.user_id));

    // Two members chosen in the list: a confirmation naming both, then one batch.
    let list = b.get("/admin/members").await;
    let mut ids = Vec::new();
    for l in [&hanako, &jiro] {
        let r = rows(
            &app.db,
            "SELECT id FROM members WHERE user_id = $1",
            &[Arg::Text(&l.user_id)],
        )
        .await;
        ids.push(r[0][0].clone().unwrap());
    }
    let token = list.csrf_token();
    let confirm = b
        .post(
            "/admin/batch/reset-password",
            &[("ids", &ids[0]), ("ids", &ids[1]), ("csrf_token", &token)],
        )
        .await;
    assert_eq!(confirm.status, 200, "{}", confirm.summary());
    assert!(confirm.text().contains("鈴木 花子") && confirm.text().contains("佐藤 次郎"));
    // Nothing changed yet: the old password still opens the first login.
    let member = Browser::new(&app, DAIWA_HOST);
    assert!(login(&member, &hanako.user_id, &hanako.password)
        .await
        .is_see_other("/login/next"));
    let done = b
        .post(
            "/admin/batch/reset-password",
            &[
                ("ids", &ids[0]),
                ("ids", &ids[1]),
                ("confirm", "yes"),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.summary());
    let letter_url = done
        .text()
        .split("href=\"/admin/letters/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(|batch| format!("/admin/letters/{batch}"))
        .unwrap();
    let letters = b.get(&letter_url).await;
    assert_eq!(
        letters.body.matches("<article class=\"letter\"").count(),
        2,
        "{}",
        letters.summary()
    );
    assert!(letters.text().contains(&hanako.user_id) && letters.text().contains(&jiro.user_id));
    let member = Browser::new(&app, DAIWA_HOST);
    assert!(!login(&member, &jiro.user_id, &jiro.password)
        .await
        .is_see_other("/login/next"));
    // Another society's member cannot be slipped into a batch.
    let refused = b
        .post(
            "/admin/batch/reset-password",
            &[
                ("ids", "0123456789abcdef0123456789abcdef"),
                ("confirm", "yes"),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(refused.status, 404, "{}", refused.summary());
}

/// Accepts an invitation with the second-factor kind `method`; returns the reply.
async fn accept_invitation(b: &Browser, token: &str, method: &str) -> crate::browser_like::Reply {
    let page = b.get(&format!("/admin/invite?token={token}")).await;
    assert_eq!(page.status, 200, "{}", page.summary());
    let password = "Console-pass-2026!";
    b.post(
        "/admin/invite",
        &[
            ("token", token),
            ("password", password),
            ("password_confirm", password),
            ("mfa_method", method),
            ("csrf_token", &page.csrf_token()),
        ],
    )
    .await
}

async fn an_invited_admin_chooses_a_passkey_and_signs_in_with_it(backend: Backend) {
    use crate::passkeys::{assert_with, login_options_at, register_at, sign_in_at};
    let app = TestApp::spawn(backend).await;
    let (admin_id, token) = invite(&app.db, "daiwakenpo", "pk-admin@example.jp", "admin");
    let b = Browser::new(&app, DAIWA_HOST);

    // The invitation offers both kinds; a kind admins may not hold is refused by its field
    // and spends nothing.
    let page = b.get(&format!("/admin/invite?token={token}")).await;
    assert!(
        page.text().contains("二要素認証の方法"),
        "{}",
        page.summary()
    );
    assert!(
        page.body.contains("value=\"passkey\""),
        "{}",
        page.summary()
    );
    let refused = accept_invitation(&b, &token, "email_otp").await;
    assert_eq!(refused.status, 200, "{}", refused.summary());
    assert!(
        refused.body.contains("id=\"mfa_method-error\""),
        "{}",
        refused.summary()
    );
    assert!(refused
        .text()
        .contains("二要素認証の方法を選んでください。"));

    // Choosing the passkey leads to its set-up, with the offer of an app instead.
    let reply = accept_invitation(&b, &token, "passkey").await;
    assert!(
        reply.is_see_other("/admin/login/next"),
        "{}",
        reply.summary()
    );
    let reply = b.follow(reply).await;
    assert!(
        reply.is_see_other("/admin/login/passkey/setup"),
        "{}",
        reply.summary()
    );
    let setup = b.get("/admin/login/passkey/setup").await;
    assert!(
        setup.text().contains("パスキーの登録"),
        "{}",
        setup.summary()
    );
    assert!(setup.text().contains("認証アプリを登録する"));
    // The app page is not reachable while the passkey is owed.
    let app_page = b.get("/admin/login/totp").await;
    assert!(
        app_page.is_see_other("/admin/login/passkey/setup"),
        "{}",
        app_page.summary()
    );

    // The admin changes their mind and back: the flow follows the choice.
    let switched = b
        .post(
            "/admin/login/method",
            &[("mfa_method", "totp"), ("csrf_token", &setup.csrf_token())],
        )
        .await;
    assert!(
        switched.is_see_other("/admin/login/next"),
        "{}",
        switched.summary()
    );
    let next = b.follow(switched).await;
    assert!(next.is_see_other("/admin/login/totp"), "{}", next.summary());
    let totp_page = b.get("/admin/login/totp").await;
    assert!(totp_page.text().contains("パスキーを登録する"));
    let back = b
        .post(
            "/admin/login/method",
            &[
                ("mfa_method", "passkey"),
                ("csrf_token", &totp_page.csrf_token()),
            ],
        )
        .await;
    let next = b.follow(back).await;
    assert!(
        next.is_see_other("/admin/login/passkey/setup"),
        "{}",
        next.summary()
    );

    // The same ceremony code as members', under /admin: the console opens.
    let done = register_at(&b, "/admin", "事務所のパソコン").await;
    assert!(done.is_see_other("/admin/"), "{}", done.summary());
    let dashboard = b.get("/admin/").await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.summary());
    assert!(dashboard.text().contains("ダッシュボード"));
    let devices = rows(
        &app.db,
        "SELECT kind, name FROM admin_devices WHERE admin_id = $1",
        &[Arg::Text(&admin_id)],
    )
    .await;
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0][0].as_deref(), Some("passkey"));
    assert_eq!(devices[0][1].as_deref(), Some("事務所のパソコン"));
    let registered = rows(
        &app.db,
        "SELECT event FROM audit_events WHERE actor_id = $1 AND event = 'passkey_registered'",
        &[Arg::Text(&admin_id)],
    )
    .await;
    assert_eq!(registered.len(), 1);

    // A later sign-in: address, password, then 「次へ」 and the passkey.
    let later = b.private_window(&app);
    let login_page = later.get("/admin/login").await;
    let reply = later
        .post(
            "/admin/login",
            &[
                ("email", "pk-admin@example.jp"),
                ("password", "Console-pass-2026!"),
                ("csrf_token", &login_page.csrf_token()),
            ],
        )
        .await;
    let reply = later.follow(reply).await;
    assert!(
        reply.is_see_other("/admin/login/factor"),
        "{}",
        reply.summary()
    );
    let reply = later.follow(reply).await;
    assert!(
        reply.is_see_other("/admin/login/passkey"),
        "{}",
        reply.summary()
    );
    let done = sign_in_at(&later, "/admin").await;
    assert!(done.is_see_other("/admin/"), "{}", done.summary());
    assert_eq!(later.get("/admin/").await.status, 200);

    // The admin's passkey answers nothing on kanekakenpo's host, even for an admin there
    // who holds a passkey of their own.
    let (_, k_token) = invite(&app.db, "kanekakenpo", "pk-k@example.jp", "admin");
    let k = Browser::new(&app, KANEKA_HOST);
    let reply = accept_invitation(&k, &k_token, "passkey").await;
    let _ = k.follow(reply).await;
    let done = register_at(&k, "/admin", "パスキー").await;
    assert!(done.is_see_other("/admin/"), "{}", done.summary());
    let k2 = k.private_window(&app);
    let login_page = k2.get("/admin/login").await;
    let reply = k2
        .post(
            "/admin/login",
            &[
                ("email", "pk-k@example.jp"),
                ("password", "Console-pass-2026!"),
                ("csrf_token", &login_page.csrf_token()),
            ],
        )
        .await;
    assert!(
        reply.is_see_other("/admin/login/next"),
        "{}",
        reply.summary()
    );
    let (token, mut options) = login_options_at(&k2, "/admin").await;
    let daiwa_options = {
        let d = b.private_window(&app);
        let page = d.get("/admin/login").await;
        d.post(
            "/admin/login",
            &[
                ("email", "pk-admin@example.jp"),
                ("password", "Console-pass-2026!"),
                ("csrf_token", &page.csrf_token()),
            ],
        )
        .await;
        login_options_at(&d, "/admin").await.1
    };
    options.public_key.allow_credentials = daiwa_options.public_key.allow_credentials.clone();
    let signed = assert_with(&b.at(KANEKA_HOST), options);
    let refused = k2
        .post_json("/admin/login/passkey/finish", &token, signed)
        .await;
    assert_eq!(refused.status, 400, "{}", refused.summary());
    assert_ne!(k2.get("/admin/").await.status, 200);
    let foreign = rows(
        &app.db,
        "SELECT detail FROM audit_events WHERE event = 'passkey_credential_refused'",
        &[],
    )
    .await;
    assert_eq!(foreign.len(), 1, "{foreign:?}");
}
