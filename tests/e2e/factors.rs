//! E-mail one-time passwords read from the mail a real SMTP server received, and
//! 「ログイン方法変更」: adding an authenticator app and a second passkey, removing one
//! (「削除する」), refusing to remove the last factor, step-up with a second factor,
//! the notice mails, and the tenant's allowed methods enforced on the server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::browser_like::{
    add_some_member, fresh_password, fresh_user_id, host_of, login_ok, mails_to, signed_in_member,
    text_for, walk_first_login_to, Browser, Letter,
};
use crate::db::{count, exec, member_id, Arg};
use crate::harness::{
    eventually, free_port, on_both_backends, Backend, SmtpServer, TestApp, TestDb,
};
use crate::otp::{oathtool, shown_key};

on_both_backends!(
    email_codes_are_mailed_single_use_and_count_toward_lockout,
    factors_are_added_and_removed_from_login_methods,
);

const WRONG: &str = "ワンタイムパスワードが正しくありません";

/// Subjects and text bodies of the messages the SMTP server received for `to`, once
/// `enough` holds for them (waits up to 10 s).
async fn received_until(
    smtp: &SmtpServer,
    to: &str,
    enough: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut texts = Vec::new();
    eventually(Duration::from_secs(10), || {
        texts = smtp
            .messages()
            .iter()
            .filter_map(|raw| text_for(raw.as_bytes(), to))
            .collect();
        let done = enough(&texts);
        async move { done }
    })
    .await;
    texts
}

/// The messages for `to`, once there are at least `n`.
async fn received(smtp: &SmtpServer, to: &str, n: usize) -> Vec<String> {
    received_until(smtp, to, |texts| texts.len() >= n).await
}

/// The code in the newest one-time password mail to `to` (at least `n` such mails).
pub(crate) async fn mailed_code(smtp: &SmtpServer, to: &str, n: usize) -> String {
    let code_of = |text: &String| {
        let after = text.split("ワンタイムパスワード：").nth(1)?;
        Some(
            after
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>(),
        )
    };
    let texts = received_until(smtp, to, |texts| {
        texts.iter().filter_map(code_of).count() >= n
    })
    .await;
    let codes: Vec<String> = texts.iter().filter_map(code_of).collect();
    assert!(codes.len() >= n, "only {} code mails to {to}", codes.len());
    codes.last().unwrap().clone()
}

/// A kanekakenpo member whose first login chose e-mail codes; ends on the top page.
pub(crate) async fn email_member(app: &TestApp, smtp: &SmtpServer) -> (Letter, String, String) {
    let letter = add_some_member(&app.db, "kanekakenpo");
    let b = Browser::new(app, &host_of("kanekakenpo"));
    let (user_id, password) = (fresh_user_id(), fresh_password());
    let next = walk_first_login_to(&b, &letter, &user_id, &password, "email_otp").await;
    // kanekakenpo 【6】【7】: the confirmation link from the mail, then 「更新」.
    assert!(
        next.is_see_other("/login/email/confirm"),
        "{}",
        next.summary()
    );
    let mails = received(smtp, &letter.email, 1).await;
    let link = mails[0]
        .split_whitespace()
        .find(|w| w.contains("/email/confirm?token="))
        .expect("a confirmation link")
        .to_owned();
    assert_eq!(b.get(&link).await.status, 200);
    let next = b.get("/login/next").await;
    assert!(next.is_see_other("/login/email-otp"), "{}", next.summary());

    // 【2-6】: a code is mailed from the society's sender; a wrong one keeps the form.
    let page = b.get("/login/email-otp").await;
    assert!(page.text().contains("メール認証"), "{}", page.summary());
    assert!(page.body.contains("autocomplete=\"one-time-code\""));
    let code = mailed_code(smtp, &letter.email, 1).await;
    assert_eq!(code.len(), 6);
    let wrong = b.fill("/login/email-otp", &[("code", "000000")]).await;
    assert!(wrong.text().contains(WRONG), "{}", wrong.summary());
    assert!(wrong.body.contains("role=\"alert\""));
    // 「再送信」 at once: the cooldown is explained and nothing is sent.
    let resend = b.submit("/login/email-otp/resend", &[]).await;
    assert!(
        resend.is_see_other("/login/email-otp?notice=cooldown"),
        "{}",
        resend.summary()
    );
    let resend = b.follow(resend).await;
    assert!(
        resend.text().contains("秒後にできます"),
        "{}",
        resend.summary()
    );
    let done = b.fill("/login/email-otp", &[("code", &code)]).await;
    assert!(done.is_see_other("/login/next"), "{}", done.summary());
    assert!(b.follow(done).await.is_see_other("/"));
    assert!(b.get("/").await.text().contains(&letter.name));
    (letter, user_id.to_lowercase(), password)
}

async fn email_codes_are_mailed_single_use_and_count_toward_lockout(backend: Backend) {
    let smtp = SmtpServer::start(free_port());
    let db = Arc::new(TestDb::fresh(backend).await);
    let url = smtp.url();
    let app = TestApp::spawn_on(Arc::clone(&db), move |cmd| {
        cmd.env("PORTAL_SMTP_URL", url)
            .env("PORTAL_MAIL_POLL_MS", "100");
    });
    let (letter, user_id, password) = email_member(&app, &smtp).await;
    // The set-up mail, the confirmation and the factor notice came from the society.
    let all = received(&smtp, &letter.email, 3).await;
    assert!(all.iter().any(|m| m.contains("二要素認証の追加のお知らせ")));
    let raw = smtp.messages().join("\n");
    assert!(raw.contains("kosmo-web.jp"), "sender domain of kanekakenpo");

    // A daily login: password, then a new code by mail.
    let b = Browser::new(&app, &host_of("kanekakenpo"));
    let next = login_ok(&b, &user_id, &password).await;
    assert!(next.is_see_other("/login/factor"), "{}", next.summary());
    assert!(b
        .get("/login/factor")
        .await
        .is_see_other("/login/email-otp"));
    let page = b.get("/login/email-otp").await;
    assert_eq!(page.status, 200);
    let code = mailed_code(&smtp, &letter.email, 2).await;
    let done = b.fill("/login/email-otp", &[("code", &code)]).await;
    assert!(done.is_see_other("/login/next"), "{}", done.summary());
    assert!(b.follow(done).await.is_see_other("/"));

    // That code is spent: another login cannot use it (its own code is a new one).
    let c = Browser::new(&app, &host_of("kanekakenpo"));
    login_ok(&c, &user_id, &password).await;
    c.get("/login/email-otp").await;
    let fresh = mailed_code(&smtp, &letter.email, 3).await;
    assert_ne!(fresh, code);
    let replay = c.fill("/login/email-otp", &[("code", &code)]).await;
    assert!(replay.text().contains(WRONG), "{}", replay.summary());

    // Wrong codes count toward the lockout (kanekakenpo: 5 failures).
    for _ in 0..3 {
        let wrong = c.fill("/login/email-otp", &[("code", "999999")]).await;
        assert!(wrong.text().contains(WRONG));
    }
    let last = c.fill("/login/email-otp", &[("code", "999999")]).await;
    assert!(last.is_see_other("/login?locked=1"), "{}", last.summary());
    let id = member_id(&db, "kanekakenpo", &user_id).await;
    let locked = count(
        &db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM members WHERE id = $1 AND locked_until IS NOT NULL",
        &[Arg::Text(&id)],
    )
    .await;
    assert_eq!(locked, 1);
    // Even the right code does nothing now.
    let after = c.submit("/login/email-otp", &[("code", &fresh)]).await;
    assert!(after.is_see_other("/login?locked=1"), "{}", after.summary());
    let failures = count(
        &db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE member_id = $1 \
         AND event = 'email_otp_failed'",
        &[Arg::Text(&id)],
    )
    .await;
    assert_eq!(failures, 6);
}

/// The rows of a kind's section on 「ログイン方法変更」: (device id, name) pairs in page order.
fn listed(page: &str) -> Vec<(String, String)> {
    page.split("<li class=\"device\">")
        .skip(1)
        .map(|item| {
            let name = item
                .split("<p class=\"device-name\">")
                .nth(1)
                .and_then(|s| s.split('<').next())
                .unwrap_or_default()
                .to_owned();
            let id = item
                .split("/login-methods/devices/")
                .nth(1)
                .and_then(|s| s.split('/').next())
                .unwrap_or_default()
                .to_owned();
            (id, name)
        })
        .collect()
}

async fn factors_are_added_and_removed_from_login_methods(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let m = signed_in_member(&app, "daiwakenpo").await;
    let b = &m.browser;
    let page = b.get("/login-methods").await;
    assert!(page.text().contains("二要素認証"));
    let devices = listed(&page.body);
    assert_eq!(devices.len(), 1, "{}", page.summary());
    let (first_passkey, name) = devices[0].clone();
    assert_eq!(name, "パスキー");
    // daiwakenpo offers passkeys and authenticator apps, not e-mail codes.
    assert!(page.body.contains("/login-methods/add/passkey"));
    assert!(page.body.contains("/login-methods/add/totp"));
    assert!(!page.body.contains("/login-methods/add/email_otp"));
    assert_eq!(b.get("/login-methods/add/email_otp").await.status, 404);

    // The only factor cannot be removed: daiwakenpo requires one.
    let path = format!("/login-methods/devices/{first_passkey}/delete");
    let confirm = b.get(&path).await;
    assert!(
        confirm.text().contains("削除できません"),
        "{}",
        confirm.summary()
    );
    let refused = b.submit(&path, &[]).await;
    assert_eq!(refused.status, 409, "{}", refused.summary());
    assert_eq!(listed(&b.get("/login-methods").await.body).len(), 1);

    // 「設定」 → an authenticator app (the login was just now: no step-up).
    let start = b.get("/login-methods/add/totp").await;
    assert!(start.is_see_other("/login/next"), "{}", start.summary());
    assert!(b.follow(start).await.is_see_other("/login/totp"));
    let setup = b.get("/login/totp").await;
    // A member adding a factor may go back (「戻る」) to where they came from.
    let html = crate::browser_like::unescape_html(&setup.body);
    assert!(
        html.contains("<a href=\"/login-methods\">戻る</a>"),
        "{}",
        setup.summary()
    );
    let key = shown_key(&setup);
    let taken = b
        .fill(
            "/login/totp",
            &[("device_name", "パスキー"), ("code", &oathtool(&key, 0))],
        )
        .await;
    assert!(
        taken.text().contains("すでに登録されています"),
        "{}",
        taken.summary()
    );
    let done = b
        .fill(
            "/login/totp",
            &[
                ("device_name", "会社のスマホ"),
                ("code", &oathtool(&key, 0)),
            ],
        )
        .await;
    assert!(done.is_see_other("/login/next"), "{}", done.summary());
    let back = b.follow(done).await;
    assert!(
        back.is_see_other("/login-methods?added=1"),
        "{}",
        back.summary()
    );
    let page = b.get("/login-methods?added=1").await;
    assert!(page.text().contains("二要素認証を追加しました。"));
    let mut names: Vec<String> = listed(&page.body).into_iter().map(|(_, n)| n).collect();
    names.sort();
    assert_eq!(names, ["パスキー", "会社のスマホ"]);
    assert!(mails_to(b, &m.letter.email, 2)
        .await
        .iter()
        .any(|t| t.contains("認証アプリ") && t.contains("会社のスマホ")));

    // Step-up: the last authentication is old, and it was not a passkey (the session now
    // comes from the app set-up), so a password and then a second factor are asked.
    let id = member_id(&app.db, "daiwakenpo", &m.user_id).await;
    let age_session = || async {
        exec(
            &app.db,
            "UPDATE sessions SET authenticated_at = authenticated_at - 3600 WHERE member_id = $1",
            &[Arg::Text(&id)],
        )
        .await
    };
    age_session().await;
    let add_passkey = "/login-methods/add/passkey";
    let step_up = b.get(add_passkey).await;
    assert_eq!(step_up.status, 303);
    assert!(
        step_up.location.starts_with("/reauth"),
        "{}",
        step_up.summary()
    );
    let reauth = b.follow(step_up).await;
    assert!(reauth
        .text()
        .contains("続行する際には再度認証してください。"));
    let password = reauth_with(b, &reauth, &m.password, add_passkey).await;
    assert!(
        password.is_see_other("/login/next"),
        "{}",
        password.summary()
    );
    // Until the second factor is proven, the page still asks for the step-up.
    assert!(b.get(add_passkey).await.location.starts_with("/reauth"));
    assert!(b.get("/login/next").await.is_see_other("/login/factor"));
    // The member holds two kinds and may pick either: here the passkey.
    let next = crate::passkeys::sign_in(b).await;
    assert!(next.is_see_other(add_passkey), "{}", next.summary());

    // A second passkey, from another device: a name already used is refused.
    let phone = Browser {
        authenticator: Arc::new(Mutex::new(SoftPasskey::new(true))),
        ..b.clone()
    };
    let start = phone.get(add_passkey).await;
    assert!(start.is_see_other("/login/next"), "{}", start.summary());
    assert!(phone
        .follow(start)
        .await
        .is_see_other("/login/passkey/setup"));
    let finish = crate::passkeys::register_ceremony(&phone).await;
    assert_eq!(finish.status, 200, "{}", finish.summary());
    let dup = phone
        .fill("/login/passkey/name", &[("name", "パスキー")])
        .await;
    assert!(
        dup.text().contains("この名前はすでに登録されています。"),
        "{}",
        dup.summary()
    );
    let ok = phone
        .fill("/login/passkey/name", &[("name", "iPhone")])
        .await;
    assert!(ok.is_see_other("/login/next"), "{}", ok.summary());
    assert!(phone
        .follow(ok)
        .await
        .is_see_other("/login-methods?added=1"));
    assert_eq!(listed(&b.get("/login-methods").await.body).len(), 3);

    // The session now stems from a passkey ceremony: an old one needs the password only.
    age_session().await;
    let path = format!("/login-methods/devices/{first_passkey}/delete");
    let step_up = b.get(&path).await;
    assert!(
        step_up.location.starts_with("/reauth"),
        "{}",
        step_up.summary()
    );
    let reauth = b.follow(step_up).await;
    let password = reauth_with(b, &reauth, &m.password, &path).await;
    assert!(password.is_see_other(&path), "{}", password.summary());

    // 「削除」 → 「戻る」 keeps it; 「削除する」 removes it.
    let confirm = b.get(&path).await;
    assert!(confirm.text().contains("削除する") && confirm.text().contains("戻る"));
    assert!(confirm.body.contains("href=\"/login-methods\""));
    let gone = b.fill(&path, &[]).await;
    assert!(
        gone.is_see_other("/login-methods?removed=1"),
        "{}",
        gone.summary()
    );
    let page = b.get("/login-methods?removed=1").await;
    assert!(page.text().contains("二要素認証を削除しました。"));
    let names: Vec<String> = listed(&page.body).into_iter().map(|(_, n)| n).collect();
    assert!(!names.contains(&"パスキー".to_owned()), "{names:?}");
    assert_eq!(names.len(), 2);
    assert!(mails_to(b, &m.letter.email, 4)
        .await
        .iter()
        .any(|t| t.contains("削除されました") && t.contains("パスキー")));

    // Another member cannot remove (or even see) this member's device.
    let other = signed_in_member(&app, "daiwakenpo").await;
    let (app_id, _) = listed(&b.get("/login-methods").await.body)[0].clone();
    let foreign = other
        .browser
        .get(&format!("/login-methods/devices/{app_id}/delete"))
        .await;
    assert_eq!(foreign.status, 404);
    let audit = count(
        &app.db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE member_id = $1 \
         AND event IN ('factor_removed', 'factor_remove_refused', 'totp_registered', \
         'passkey_registered')",
        &[Arg::Text(&id)],
    )
    .await;
    assert_eq!(audit, 5);
}

/// The step-up form: the member's password, returning to `return_to`.
async fn reauth_with(
    b: &Browser,
    page: &crate::browser_like::Reply,
    password: &str,
    return_to: &str,
) -> crate::browser_like::Reply {
    let token = page.csrf_token();
    b.post(
        "/reauth",
        &[
            ("password", password),
            ("return_to", return_to),
            ("csrf_token", &token),
        ],
    )
    .await
}
