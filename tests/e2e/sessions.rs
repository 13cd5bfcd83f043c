//! 「ログイン中の端末」 and 「最近のログイン履歴」 under 「ログイン方法変更」: a member sees
//! the browsers signed in now and their sign-ins (failed ones too), signs out another
//! browser or all of them after a confirmation, and that browser is signed out at its next
//! request. Another member's browsers are out of reach.

use std::sync::Arc;

use crate::browser_like::{host_of, login, login_ok, Browser};
use crate::db::{count, exec, member_id, value, Arg};
use crate::harness::{free_port, on_both_backends, Backend, SmtpServer, TestDb};
use crate::otp::oathtool;
use crate::password_reset::{app_with_smtp, member_with_app};

on_both_backends!(a_member_signs_out_their_other_browsers);

async fn a_member_signs_out_their_other_browsers(backend: Backend) {
    let smtp = SmtpServer::start(free_port());
    let db = Arc::new(TestDb::fresh(backend).await);
    let app = app_with_smtp(Arc::clone(&db), &smtp);
    let m = member_with_app(&app, &smtp, "daiwakenpo").await;
    let other_member = member_with_app(&app, &smtp, "daiwakenpo").await;
    let id = member_id(&db, "daiwakenpo", &m.user_id).await;
    let first = &m.browser;

    // A failed attempt, then a second browser (another User-Agent) signs in.
    let second = Browser::new(&app, &host_of("daiwakenpo"));
    let refused = login(&second, &m.user_id, "Wrong-password-1").await;
    assert_eq!(refused.status, 200);
    let next = login_ok(&second, &m.user_id, &m.password).await;
    assert!(next.is_see_other("/login/factor"), "{}", next.summary());
    let otp = second
        .fill("/login/otp", &[("code", &oathtool(&m.key, 30))])
        .await;
    second.follow(second.follow(otp).await).await;
    assert_eq!(second.get("/login-methods").await.status, 200);

    // The first browser sees both, itself marked, and the history with the failure.
    let page = first.get("/login-methods").await;
    let text = page.text();
    assert!(text.contains("ログイン中の端末"), "{text}");
    assert!(text.contains("この端末"), "{text}");
    assert_eq!(
        page.body.matches("/login-methods/sessions/").count(),
        2,
        "{text}"
    );
    assert!(text.contains("最近のログイン履歴"), "{text}");
    assert!(
        text.contains("失敗：ユーザ IDまたはパスワードの誤り"),
        "{text}"
    );
    assert!(text.contains("ログイン（認証アプリ）"), "{text}");

    // The other member's session reference is of no use here.
    let their_id = member_id(&db, "daiwakenpo", &other_member.user_id).await;
    let their_hash = value(
        &db,
        "SELECT token_hash FROM sessions WHERE member_id = $1",
        &[Arg::Text(&their_id)],
    )
    .await
    .unwrap();
    let their_ref = portal::member::sessions::reference(&their_hash);
    let foreign = first
        .get(&format!("/login-methods/sessions/{their_ref}/end"))
        .await;
    assert!(
        foreign.is_see_other("/login-methods"),
        "{}",
        foreign.summary()
    );
    let posted = first
        .submit(&format!("/login-methods/sessions/{their_ref}/end"), &[])
        .await;
    assert!(
        posted.is_see_other("/login-methods?ended=0"),
        "{}",
        posted.summary()
    );
    assert_eq!(other_member.browser.get("/login-methods").await.status, 200);

    // An old sign-in steps up first.
    exec(
        &db,
        "UPDATE sessions SET authenticated_at = authenticated_at - 3600 WHERE member_id = $1",
        &[Arg::Text(&id)],
    )
    .await;
    let reference = reference_of(&page.body);
    let path = format!("/login-methods/sessions/{reference}/end");
    let gate = first.get(&path).await;
    assert!(
        gate.location.starts_with("/reauth?return_to="),
        "{}",
        gate.summary()
    );
    // (The step-up itself is walked in email_change.rs; here the sign-in is made recent.)
    exec(
        &db,
        "UPDATE sessions SET authenticated_at = authenticated_at + 3600 WHERE member_id = $1",
        &[Arg::Text(&id)],
    )
    .await;

    // The confirmation says what will happen; 「ログアウトさせる」 does it.
    let confirm = first.get(&path).await;
    assert!(
        confirm.text().contains("次の端末をログアウトさせます"),
        "{}",
        confirm.summary()
    );
    let done = first.submit(&path, &[]).await;
    assert!(
        done.is_see_other("/login-methods?ended=1"),
        "{}",
        done.summary()
    );
    let after = first.follow(done).await;
    assert!(after.text().contains("1台の端末をログアウトさせました"));
    // The second browser is signed out at its next request; the first is not.
    let gone = second.get("/login-methods").await;
    assert_ne!(gone.status, 200, "{}", gone.summary());
    assert_eq!(first.get("/login-methods").await.status, 200);
    assert_eq!(
        count(
            &db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE event = 'session_ended' \
             AND member_id = $1",
            &[Arg::Text(&id)]
        )
        .await,
        1
    );
}

/// The first session reference linked from a 「ログイン方法変更」 page (another browser's).
fn reference_of(html: &str) -> String {
    html.split("/login-methods/sessions/")
        .skip(1)
        .map(|s| s.split('/').next().unwrap_or(""))
        .find(|r| *r != "others")
        .unwrap_or_else(|| panic!("no session link in {html}"))
        .to_owned()
}
