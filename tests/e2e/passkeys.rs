//! Passkeys over HTTP with webauthn-authenticator-rs's software authenticator: the page's
//! script is replaced by the same JSON calls, the authenticator signs what a browser's
//! would. Registration at first login, login with 「次へ」, single-use ceremonies, and
//! refusals: another tenant's passkey, another member's, a replayed assertion.

use webauthn_authenticator_rs::AuthenticatorBackend;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse};

use crate::browser_like::{
    add_some_member, fresh_password, fresh_user_id, host_of, login_ok, signed_in_member,
    unescape_html, walk_first_login_to, Browser, Reply,
};
use crate::db::{count, exec, member_id, value, Arg};
use crate::harness::{on_both_backends, Backend, TestApp};

/// The CSRF token the page at `path` hands its script (`data-csrf`).
pub async fn page_token(b: &Browser, path: &str) -> String {
    let page = b.get(path).await;
    assert_eq!(page.status, 200, "GET {path}: {}", page.summary());
    let (_, rest) = page
        .body
        .split_once("data-csrf=\"")
        .unwrap_or_else(|| panic!("no data-csrf on {path}: {}", page.summary()));
    unescape_html(&rest[..rest.find('"').unwrap()])
}

pub fn next_of(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "{}", reply.summary());
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    json["next"].as_str().unwrap_or_default().to_owned()
}

pub fn error_of(reply: &Reply) -> String {
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
    json["error"].as_str().unwrap_or_default().to_owned()
}

/// 「セキュリティキー登録」 → 「登録」 → ceremony; returns the finish reply.
pub async fn register_ceremony(b: &Browser) -> Reply {
    register_ceremony_at(b, "").await
}

/// The registration ceremony of the sign-in pages under `side` (`""` for members,
/// `"/admin"` for the console).
pub async fn register_ceremony_at(b: &Browser, side: &str) -> Reply {
    let token = page_token(b, &format!("{side}/login/passkey/setup")).await;
    let options = b
        .post_json(
            &format!("{side}/login/passkey/setup/options"),
            &token,
            "{}".into(),
        )
        .await;
    assert_eq!(options.status, 200, "{}", options.summary());
    let options: CreationChallengeResponse = serde_json::from_str(&options.body).unwrap();
    let credential = b
        .authenticator
        .lock()
        .unwrap()
        .perform_register(b.origin(), options.public_key, 60_000)
        .expect("the software authenticator registers");
    b.post_json(
        &format!("{side}/login/passkey/setup/finish"),
        &token,
        serde_json::to_string(&credential).unwrap(),
    )
    .await
}

/// The whole registration: ceremony, then the name 「ＯＫ」; returns the reply of
/// `/login/next` that follows.
pub async fn register(b: &Browser, name: &str) -> Reply {
    register_at(b, "", name).await
}

/// The whole registration on the sign-in pages under `side`.
pub async fn register_at(b: &Browser, side: &str, name: &str) -> Reply {
    let finish = register_ceremony_at(b, side).await;
    let name_path = format!("{side}/login/passkey/name");
    assert_eq!(next_of(&finish), name_path);
    let page = b.get(&name_path).await;
    assert!(
        page.body.contains("value=\"パスキー\""),
        "{}",
        page.summary()
    );
    let reply = b.fill(&name_path, &[("name", name)]).await;
    assert!(
        reply.is_see_other(&format!("{side}/login/next")),
        "{}",
        reply.summary()
    );
    b.follow(reply).await
}

/// The options of the 「次へ」 step: (token, options).
async fn login_options(b: &Browser) -> (String, RequestChallengeResponse) {
    login_options_at(b, "").await
}

pub async fn login_options_at(b: &Browser, side: &str) -> (String, RequestChallengeResponse) {
    let token = page_token(b, &format!("{side}/login/passkey")).await;
    let options = b
        .post_json(
            &format!("{side}/login/passkey/options"),
            &token,
            "{}".into(),
        )
        .await;
    assert_eq!(options.status, 200, "{}", options.summary());
    (token, serde_json::from_str(&options.body).unwrap())
}

/// The assertion the authenticator makes for `options`, as JSON.
pub fn assert_with(b: &Browser, options: RequestChallengeResponse) -> String {
    let credential = b
        .authenticator
        .lock()
        .unwrap()
        .perform_auth(b.origin(), options.public_key, 60_000)
        .expect("the software authenticator signs");
    serde_json::to_string(&credential).unwrap()
}

/// 「次へ」 → ceremony; returns the reply of `/login/next` that follows.
pub async fn sign_in(b: &Browser) -> Reply {
    sign_in_at(b, "").await
}

/// 「次へ」 → ceremony on the sign-in pages under `side`.
pub async fn sign_in_at(b: &Browser, side: &str) -> Reply {
    let (token, options) = login_options_at(b, side).await;
    let body = assert_with(b, options);
    let finish = b
        .post_json(&format!("{side}/login/passkey/finish"), &token, body)
        .await;
    let next = format!("{side}/login/next");
    assert_eq!(next_of(&finish), next);
    b.get(&next).await
}

/// A daily login of a passkey member: password, 「次へ」; returns where `/login/next` sends.
pub async fn login(b: &Browser, user_id: &str, password: &str) -> Reply {
    let next = login_ok(b, user_id, password).await;
    assert!(next.is_see_other("/login/factor"), "{}", next.summary());
    let factor = b.get("/login/factor").await;
    assert!(
        factor.is_see_other("/login/passkey"),
        "{}",
        factor.summary()
    );
    let page = b.get("/login/passkey").await;
    assert!(page.text().contains("次へ"), "{}", page.summary());
    sign_in(b).await
}

async fn audit_count(app: &TestApp, user_id: &str, event: &str) -> i64 {
    count(
        &app.db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events a JOIN members m ON m.id = a.member_id \
         WHERE m.user_id = $1 AND a.event = $2",
        &[Arg::Text(user_id), Arg::Text(event)],
    )
    .await
}

on_both_backends!(
    passkey_first_login_and_daily_login,
    passkey_ceremonies_are_single_use_and_bound,
    passkey_of_another_member_or_tenant_is_refused,
    a_sign_counter_that_goes_back_is_refused,
);

async fn passkey_first_login_and_daily_login(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let letter = add_some_member(&app.db, "daiwakenpo");
    let b = Browser::new(&app, &host_of("daiwakenpo"));
    let (user_id, password) = (fresh_user_id(), fresh_password());
    let next = walk_first_login_to(&b, &letter, &user_id, &password, "passkey").await;
    // The chosen method is set up before the top page; nothing else can be reached.
    assert!(
        next.is_see_other("/login/passkey/setup"),
        "{}",
        next.summary()
    );
    assert!(b.get("/").await.text().contains("ログイン"));
    assert!(b
        .get("/login/next")
        .await
        .is_see_other("/login/passkey/setup"));
    let setup = b.get("/login/passkey/setup").await;
    assert!(setup.text().contains("セキュリティキー登録") && setup.text().contains("登録"));
    // In a login there is nowhere to go back to: no 「戻る」 to 「ログイン方法変更」.
    assert!(!unescape_html(&setup.body).contains("/login-methods"));

    // A name is required; 「ＯＫ」 with the default registers the key.
    let finish = register_ceremony(&b).await;
    assert_eq!(next_of(&finish), "/login/passkey/name");
    let empty = b.fill("/login/passkey/name", &[("name", "  ")]).await;
    assert!(empty.text().contains("パスキーの名前を入力してください。"));
    let too_long = "あ".repeat(31);
    let long = b.fill("/login/passkey/name", &[("name", &too_long)]).await;
    assert!(long.text().contains("30文字以内"), "{}", long.summary());
    let reply = b.fill("/login/passkey/name", &[("name", "パスキー")]).await;
    assert!(reply.is_see_other("/login/next"), "{}", reply.summary());
    assert!(b.follow(reply).await.is_see_other("/"));
    assert!(b.get("/").await.text().contains(&letter.name));
    assert_eq!(audit_count(&app, &user_id, "passkey_registered").await, 1);

    // Later logins: password, then 「次へ」 and the ceremony.
    let other = b.private_window(&app);
    let next = login(&other, &user_id, &password).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    assert!(other.get("/").await.text().contains(&letter.name));
    assert_eq!(audit_count(&app, &user_id, "passkey_used").await, 1);

    // The passkey is listed on 「ログイン方法変更」 with its dates.
    let methods = other.get("/login-methods").await;
    assert!(
        methods.text().contains("二要素認証"),
        "{}",
        methods.summary()
    );
    assert!(methods.text().contains("パスキー"));
    assert!(methods.text().contains("最終利用日"));
}

async fn passkey_ceremonies_are_single_use_and_bound(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let m = signed_in_member(&app, "daiwakenpo").await;
    let b = m.browser.private_window(&app);
    let next = login_ok(&b, &m.user_id, &m.password).await;
    assert!(next.is_see_other("/login/factor"));

    // An assertion is accepted once: replaying it is refused.
    let (token, options) = login_options(&b).await;
    let body = assert_with(&b, options);
    let first = b
        .post_json("/login/passkey/finish", &token, body.clone())
        .await;
    assert_eq!(next_of(&first), "/login/next");
    let c = m.browser.private_window(&app);
    let next = login_ok(&c, &m.user_id, &m.password).await;
    assert!(next.is_see_other("/login/factor"));
    let _ = login_options(&c).await;
    let token = page_token(&c, "/login/passkey").await;
    let replay = c.post_json("/login/passkey/finish", &token, body).await;
    assert_eq!(replay.status, 400, "{}", replay.summary());
    assert_eq!(error_of(&replay), "failed");
    // The refused try ended that ceremony: finishing again needs new options.
    let token = page_token(&c, "/login/passkey").await;
    let again = c
        .post_json("/login/passkey/finish", &token, "{}".into())
        .await;
    assert_eq!(error_of(&again), "expired");

    // Without the CSRF header nothing happens.
    let no_token = c
        .client
        .post(c.url("/login/passkey/options"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status().as_u16(), 403);

    // Garbage is refused with the same neutral error, and counts as a failure.
    let (token, _) = login_options(&c).await;
    let junk = c
        .post_json("/login/passkey/finish", &token, "{\"id\":1}".into())
        .await;
    assert_eq!(junk.status, 400);
    assert_eq!(audit_count(&app, &m.user_id, "passkey_failed").await, 2);
}

async fn passkey_of_another_member_or_tenant_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Alice registers a passkey on daiwakenpo; Bob has his own there.
    let alice = signed_in_member(&app, "daiwakenpo").await;
    let bob = signed_in_member(&app, "daiwakenpo").await;

    // Bob's login, answered with Alice's authenticator (her credential, his challenge).
    let b = bob.browser.private_window(&app);
    login_ok(&b, &bob.user_id, &bob.password).await;
    let (token, mut options) = login_options(&b).await;
    let alice_options = {
        let a = alice.browser.private_window(&app);
        login_ok(&a, &alice.user_id, &alice.password).await;
        login_options(&a).await.1
    };
    options.public_key.allow_credentials = alice_options.public_key.allow_credentials.clone();
    let body = assert_with(&alice.browser, options);
    let refused = b.post_json("/login/passkey/finish", &token, body).await;
    assert_eq!(refused.status, 400, "{}", refused.summary());
    assert!(b.get("/").await.text().contains("ログイン"));
    assert_eq!(
        audit_count(&app, &bob.user_id, "passkey_credential_refused").await,
        1
    );

    // A kanekakenpo member: Alice's daiwakenpo passkey does not work on kanekakenpo's host.
    let carol = signed_in_member(&app, "kanekakenpo").await;
    let k = carol.browser.private_window(&app);
    login_ok(&k, &carol.user_id, &carol.password).await;
    let (token, mut options) = login_options(&k).await;
    options.public_key.allow_credentials = alice_options.public_key.allow_credentials.clone();
    // What Alice's authenticator signs for kanekakenpo's page (its origin, its challenge).
    let signed = assert_with(&alice.browser.at(&host_of("kanekakenpo")), options);
    let refused = k.post_json("/login/passkey/finish", &token, signed).await;
    assert_eq!(refused.status, 400, "{}", refused.summary());
    assert_eq!(
        audit_count(&app, &carol.user_id, "passkey_credential_refused").await,
        1
    );
    // And her own passkey still works.
    let next = login(
        &carol.browser.private_window(&app),
        &carol.user_id,
        &carol.password,
    )
    .await;
    assert!(next.is_see_other("/"), "{}", next.summary());
}

/// Sets every `counter` in a stored passkey's JSON to `to`.
fn set_counter(json: &mut serde_json::Value, to: u64) -> usize {
    match json {
        serde_json::Value::Object(map) => {
            let mut n = 0;
            for (key, v) in map.iter_mut() {
                if key == "counter" && v.is_number() {
                    *v = to.into();
                    n += 1;
                } else {
                    n += set_counter(v, to);
                }
            }
            n
        }
        serde_json::Value::Array(items) => items.iter_mut().map(|v| set_counter(v, to)).sum(),
        _ => 0,
    }
}

async fn a_sign_counter_that_goes_back_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let m = signed_in_member(&app, "daiwakenpo").await;
    let next = login(&m.browser.private_window(&app), &m.user_id, &m.password).await;
    assert!(next.is_see_other("/"), "{}", next.summary());

    // The server has seen a much higher counter than this authenticator will send next:
    // what a cloned authenticator looks like.
    let id = member_id(&app.db, "daiwakenpo", &m.user_id).await;
    let stored = value(
        &app.db,
        "SELECT secret FROM mfa_devices WHERE member_id = $1 AND kind = 'passkey'",
        &[Arg::Text(&id)],
    )
    .await
    .unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(set_counter(&mut json, 1_000), 1, "{stored}");
    exec(
        &app.db,
        "UPDATE mfa_devices SET secret = $1 WHERE member_id = $2 AND kind = 'passkey'",
        &[Arg::Text(&json.to_string()), Arg::Text(&id)],
    )
    .await;

    let b = m.browser.private_window(&app);
    let next = login_ok(&b, &m.user_id, &m.password).await;
    assert!(next.is_see_other("/login/factor"));
    let (token, options) = login_options(&b).await;
    let body = assert_with(&b, options);
    let refused = b.post_json("/login/passkey/finish", &token, body).await;
    assert_eq!(refused.status, 400, "{}", refused.summary());
    assert!(b.get("/login/next").await.is_see_other("/login/factor"));
    assert_eq!(
        audit_count(&app, &m.user_id, "passkey_counter_regression").await,
        1
    );
}
