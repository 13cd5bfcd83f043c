//! 「ログイン中の端末」 and 「最近のログイン履歴」 under 「ログイン方法変更」: a member sees
//! the browsers signed in now and their sign-ins (failed ones too), signs out another
//! browser or all of them after a confirmation, and that browser is signed out at its next
//! request. Another member's browsers are out of reach.

use std::sync::Arc;

use crate::browser_like::{host_of, login, login_ok, signed_in_member, Browser};
use crate::db::{count, exec, member_id, now_unix, value, Arg};
use crate::harness::{free_port, on_both_backends, Backend, SmtpServer, TestApp, TestDb};
use crate::otp::oathtool;
use crate::password_reset::{app_with_smtp, member_with_app};

on_both_backends!(
    a_member_signs_out_their_other_browsers,
    a_session_ends_when_idle_or_too_old_and_page_views_keep_it_alive,
);

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
    // daiwakenpo calls the app 「OTP認証」 (manual ⑦).
    assert!(text.contains("ログイン（OTP認証）"), "{text}");

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

/// daiwakenpo signs a member out after 30 idle minutes and 12 hours in all. A page view
/// counts as activity; views within a minute of the last one counted need no write.
async fn a_session_ends_when_idle_or_too_old_and_page_views_keep_it_alive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let idle = signed_in_member(&app, "daiwakenpo").await;
    let old = signed_in_member(&app, "daiwakenpo").await;
    let idle_id = member_id(&app.db, "daiwakenpo", &idle.user_id).await;
    let old_id = member_id(&app.db, "daiwakenpo", &old.user_id).await;
    let last_seen = |id: String| {
        let db = Arc::clone(&app.db);
        async move {
            value(
                &db,
                "SELECT CAST(last_seen_at AS TEXT) FROM sessions WHERE member_id = $1",
                &[Arg::Text(&id)],
            )
            .await
            .map(|v| v.parse::<i64>().unwrap())
        }
    };
    let set = |column: &'static str, id: String, at: i64| {
        let db = Arc::clone(&app.db);
        async move {
            let sql = format!("UPDATE sessions SET {column} = $1 WHERE member_id = $2");
            assert_eq!(exec(&db, &sql, &[Arg::Int(at), Arg::Text(&id)]).await, 1);
        }
    };
    let signed_in = |b: &Browser, name: &str| {
        let (b, name) = (b.clone(), name.to_owned());
        async move {
            let top = b.get("/").await;
            assert_eq!(top.status, 200, "{}", top.summary());
            top.body.contains(&name)
        }
    };

    // 29 idle minutes: still signed in, and the view counts as activity.
    set("last_seen_at", idle_id.clone(), now_unix() - 29 * 60).await;
    assert!(signed_in(&idle.browser, &idle.letter.name).await);
    let seen = last_seen(idle_id.clone()).await.unwrap();
    assert!(seen >= now_unix() - 5, "not marked seen: {seen}");
    // Seen 20 seconds ago: nothing to write.
    set("last_seen_at", idle_id.clone(), now_unix() - 20).await;
    let before = last_seen(idle_id.clone()).await;
    assert!(signed_in(&idle.browser, &idle.letter.name).await);
    assert_eq!(last_seen(idle_id.clone()).await, before);
    // Just over 30 idle minutes: signed out, the session is gone.
    set("last_seen_at", idle_id.clone(), now_unix() - 30 * 60 - 5).await;
    assert!(!signed_in(&idle.browser, &idle.letter.name).await);
    assert_eq!(last_seen(idle_id).await, None);
    assert_eq!(
        idle.browser.get("/login-methods").await.status,
        303,
        "a member page asks for a login"
    );

    // Active all along, but signed in just over 12 hours ago: signed out too.
    set("created_at", old_id.clone(), now_unix() - 12 * 60 * 60 - 5).await;
    assert!(!signed_in(&old.browser, &old.letter.name).await);
    assert_eq!(
        count(
            &app.db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM sessions WHERE member_id = $1",
            &[Arg::Text(&old_id)]
        )
        .await,
        0
    );
}
