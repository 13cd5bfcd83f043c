//! Authenticator apps over HTTP, with codes from the real `oathtool`: set-up at first
//! login, single use of every code (also when two logins submit one code at once), the
//! accepted window, the clock-drift hint, lockout, and tenant isolation.

use crate::browser_like::{
    add_some_member, fresh_password, fresh_user_id, host_of, login_ok, walk_first_login_to,
    Browser, Letter,
};
use crate::db::{count, member_id, value, Arg};
use crate::harness::{on_both_backends, Backend, TestApp};
use crate::otp::{oathtool, shown_key};

on_both_backends!(
    app_is_set_up_at_first_login_and_codes_work_once,
    one_code_submitted_by_two_logins_at_once_lets_one_through,
    another_members_app_cannot_be_used,
);

const WRONG: &str = "ワンタイムパスワードが正しくありません";

pub(crate) struct AppMember {
    pub(crate) letter: Letter,
    pub(crate) user_id: String,
    pub(crate) password: String,
    pub(crate) key: String,
    /// The code that confirmed the set-up (spent).
    pub(crate) setup_code: String,
}

/// A daiwakenpo member whose first login registered an authenticator app.
pub(crate) async fn member_with_app(app: &TestApp) -> AppMember {
    let letter = add_some_member(&app.db, "daiwakenpo");
    let b = Browser::new(app, &host_of("daiwakenpo"));
    let (user_id, password) = (fresh_user_id(), fresh_password());
    let next = walk_first_login_to(&b, &letter, &user_id, &password, "totp").await;
    assert!(next.is_see_other("/login/totp"), "{}", next.summary());
    let page = b.get("/login/totp").await;
    assert!(
        page.body.contains("スキャンできませんか？"),
        "{}",
        page.summary()
    );
    assert!(page
        .body
        .contains("2.アプリケーションを開き、キーを入力します"));
    let key = shown_key(&page);

    // A wrong code keeps the member on the form.
    let wrong = b
        .fill(
            "/login/totp",
            &[("device_name", "iPhone"), ("code", "12345")],
        )
        .await;
    assert_eq!(wrong.status, 200);
    assert!(
        wrong.body.contains("認証コードが異なります"),
        "{}",
        wrong.summary()
    );
    // Apps accept the key in lower case too.
    let code = oathtool(&key.to_lowercase(), 0);
    let done = b
        .fill("/login/totp", &[("device_name", "iPhone"), ("code", &code)])
        .await;
    assert!(done.is_see_other("/login/next"), "{}", done.summary());
    let next = b.follow(done).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    let top = b.follow(next).await;
    assert!(top.body.contains(&letter.name), "{}", top.summary());
    AppMember {
        letter,
        user_id: user_id.to_lowercase(),
        password,
        key,
        setup_code: code,
    }
}

async fn app_is_set_up_at_first_login_and_codes_work_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let m = member_with_app(&app).await;
    let b = Browser::new(&app, &host_of("daiwakenpo"));
    // After the password, the second-factor step sends the member to their app's code.
    let next = login_ok(&b, &m.user_id, &m.password).await;
    assert!(next.is_see_other("/login/factor"), "{}", next.summary());
    let factor = b.get("/login/factor").await;
    assert!(factor.is_see_other("/login/otp"), "{}", factor.summary());
    assert!(b.cookie("portal_session").is_none());
    let page = b.get("/login/otp").await;
    assert!(page.body.contains("autocomplete=\"one-time-code\""));
    assert!(page.body.contains("inputmode=\"numeric\""));

    // The code of the set-up is spent; one from two steps ago is refused.
    for code in [m.setup_code.clone(), oathtool(&m.key, -60)] {
        let r = b.fill("/login/otp", &[("code", &code)]).await;
        assert_eq!(r.status, 200, "{}", r.summary());
        assert!(r.body.contains(WRONG), "{}", r.summary());
    }
    // Three minutes off: refused like any wrong code, with the advice about the device's
    // clock but no measured offset (see privilege.rs).
    let r = b
        .fill("/login/otp", &[("code", &oathtool(&m.key, 180))])
        .await;
    assert!(
        r.body.contains(WRONG) && r.body.contains("時刻の自動補正") && !r.body.contains("時刻が約"),
        "{}",
        r.summary()
    );
    // The next step's code (within ±1 step) works, once, spaces and all.
    let next_code = oathtool(&m.key, 30);
    let spaced = format!("{} {}", &next_code[..3], &next_code[3..]);
    let r = b.fill("/login/otp", &[("code", &spaced)]).await;
    assert!(r.is_see_other("/login/next"), "{}", r.summary());
    let next = b.follow(r).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    let top = b.follow(next).await;
    assert!(top.body.contains(&m.letter.name));

    // A new login cannot reuse it.
    let c = Browser::new(&app, &host_of("daiwakenpo"));
    let next = login_ok(&c, &m.user_id, &m.password).await;
    assert!(next.is_see_other("/login/factor"), "{}", next.summary());
    let r = c.fill("/login/otp", &[("code", &next_code)]).await;
    assert!(r.body.contains(WRONG), "{}", r.summary());

    // Wrong codes count toward the lockout (the successful login above started a fresh
    // count: the reused code and four more make the tenant's five).
    for _ in 0..4 {
        let r = c.fill("/login/otp", &[("code", "000000")]).await;
        assert!(r.body.contains(WRONG), "{}", r.summary());
    }
    let d = Browser::new(&app, &host_of("daiwakenpo"));
    let r = d
        .fill(
            "/login",
            &[("user_id", &m.user_id), ("password", &m.password)],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.summary());
    assert!(r.body.contains("アカウントがロックされています。"));

    // The member's app is theirs and the tenant's: the same flow on the other tenant's
    // host knows no such member.
    let k = Browser::new(&app, &host_of("kanekakenpo"));
    let r = k
        .fill(
            "/login",
            &[("user_id", &m.user_id), ("password", &m.password)],
        )
        .await;
    assert!(
        // kanekakenpo writes ユーザID without a space.
        r.body.contains("無効なユーザID またはパスワードです。"),
        "{}",
        r.summary()
    );
}

async fn one_code_submitted_by_two_logins_at_once_lets_one_through(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let m = member_with_app(&app).await;
    let (a, b) = (
        Browser::new(&app, &host_of("daiwakenpo")),
        Browser::new(&app, &host_of("daiwakenpo")),
    );
    for browser in [&a, &b] {
        let next = login_ok(browser, &m.user_id, &m.password).await;
        assert!(next.is_see_other("/login/factor"), "{}", next.summary());
    }
    let (page_a, page_b) = (a.get("/login/otp").await, b.get("/login/otp").await);
    let code = oathtool(&m.key, 30);
    let (ta, tb) = (page_a.csrf_token(), page_b.csrf_token());
    let form_a = [("code", code.as_str()), ("csrf_token", ta.as_str())];
    let form_b = [("code", code.as_str()), ("csrf_token", tb.as_str())];
    let (ra, rb) = tokio::join!(a.post("/login/otp", &form_a), b.post("/login/otp", &form_b));
    let through = [&ra, &rb]
        .iter()
        .filter(|r| r.is_see_other("/login/next"))
        .count();
    assert_eq!(through, 1, "{}\n{}", ra.summary(), rb.summary());
    let refused = if ra.status == 303 { &rb } else { &ra };
    assert!(refused.body.contains(WRONG), "{}", refused.summary());
}

async fn another_members_app_cannot_be_used(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = member_with_app(&app).await;
    let bob = member_with_app(&app).await;
    let alice_id = member_id(&app.db, "daiwakenpo", &alice.user_id).await;
    let bob_id = member_id(&app.db, "daiwakenpo", &bob.user_id).await;
    let alice_device = value(
        &app.db,
        "SELECT id FROM mfa_devices WHERE member_id = $1",
        &[Arg::Text(&alice_id)],
    )
    .await
    .unwrap();

    let alice_step_before = last_step(&app, &alice_device).await;
    assert!(alice_step_before.is_some());

    // Bob's one-time password step neither shows nor accepts Alice's app: her device id
    // and her current code are refused as a wrong code, counted against Bob.
    let b = Browser::new(&app, &host_of("daiwakenpo"));
    let next = login_ok(&b, &bob.user_id, &bob.password).await;
    assert!(next.is_see_other("/login/factor"), "{}", next.summary());
    let page = b.get("/login/otp").await;
    assert!(!page.body.contains(&alice_device));
    let alice_code = oathtool(&alice.key, 0);
    let bob_code = oathtool(&bob.key, 30);
    if alice_code != oathtool(&bob.key, 0) && alice_code != bob_code {
        let refused = b
            .fill(
                "/login/otp",
                &[("device", &alice_device), ("code", &alice_code)],
            )
            .await;
        assert!(refused.body.contains(WRONG), "{}", refused.summary());
        let failures = count(
            &app.db,
            "SELECT CAST(failed_logins AS TEXT) FROM members WHERE id = $1",
            &[Arg::Text(&bob_id)],
        )
        .await;
        assert_eq!(failures, 1);
    }
    // Alice's app is untouched: Bob's login recorded no use of it.
    assert_eq!(last_step(&app, &alice_device).await, alice_step_before);
    // Bob's own app still works.
    let done = b.fill("/login/otp", &[("code", &bob_code)]).await;
    assert!(done.is_see_other("/login/next"), "{}", done.summary());
    assert!(b.follow(done).await.is_see_other("/"));
}

/// The last accepted time step of a device.
async fn last_step(app: &TestApp, device: &str) -> Option<String> {
    value(
        &app.db,
        "SELECT CAST(last_step AS TEXT) FROM mfa_devices WHERE id = $1",
        &[Arg::Text(device)],
    )
    .await
}
