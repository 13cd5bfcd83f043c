//! Self-service recovery read from the mail a real SMTP server received: a forgotten user
//! ID (manual §3-4) is mailed when the birth date and the address match; nothing is sent
//! otherwise, and the answer is the same to the byte.

use std::sync::Arc;
use std::time::Duration;

use crate::browser_like::{add_member, host_of, text_for, Browser, Reply};
use crate::db::{count, Arg};
use crate::harness::{
    eventually, free_port, on_both_backends, Backend, SmtpServer, TestApp, TestDb,
};

on_both_backends!(a_forgotten_user_id_is_mailed_only_when_birth_date_and_address_match);

/// The page's body without its CSRF token (the one part that differs per request).
fn without_token(reply: &Reply) -> String {
    const FIELD: &str = "name=\"csrf_token\" value=\"";
    let mut out = String::new();
    let mut rest = reply.body.as_str();
    while let Some(i) = rest.find(FIELD) {
        out.push_str(&rest[..i + FIELD.len()]);
        rest = &rest[i + FIELD.len()..];
        rest = &rest[rest.find('"').unwrap_or(0)..];
    }
    out.push_str(rest);
    out
}

/// 「生年月日」, 「メールアドレス」 → 「実行」: the status, the `Location` and the page it
/// lands on.
async fn ask(b: &Browser, birth_date: &str, email: &str) -> (u16, String, Reply) {
    let reply = b
        .fill(
            "/forgot-user-id",
            &[("birth_date", birth_date), ("email", email)],
        )
        .await;
    let (status, location) = (reply.status, reply.location.clone());
    (status, location, b.follow(reply).await)
}

async fn a_forgotten_user_id_is_mailed_only_when_birth_date_and_address_match(backend: Backend) {
    let smtp = SmtpServer::start(free_port());
    let db = Arc::new(TestDb::fresh(backend).await);
    let url = smtp.url();
    let app = TestApp::spawn_on(Arc::clone(&db), move |cmd| {
        cmd.env("PORTAL_SMTP_URL", url)
            .env("PORTAL_MAIL_POLL_MS", "100");
    });
    // A household: two members share an address; a third has another birth date.
    let parent = add_member(
        &db,
        "daiwakenpo",
        "大和 一郎",
        "1970-01-02",
        "family@example.jp",
    );
    let child = add_member(
        &db,
        "daiwakenpo",
        "大和 二郎",
        "1970-01-02",
        "Family@Example.jp",
    );
    let other = add_member(
        &db,
        "daiwakenpo",
        "大和 三郎",
        "1999-09-09",
        "family@example.jp",
    );
    let b = Browser::new(&app, &host_of("daiwakenpo"));

    // The login page leads there by the manual's words.
    let login = b.get("/login").await;
    assert!(login.text().contains("ユーザ IDを忘れた方はこちら"));
    let page = b.get("/forgot-user-id").await;
    assert!(page.text().contains("ユーザ ID案内メール送信"));

    // A wrong birth date: the same answer, byte for byte, and no mail.
    let (wrong, wrong_to, wrong_page) = ask(&b, "1970-01-03", "family@example.jp").await;
    let (right, right_to, right_page) = ask(&b, "1970-01-02", "FAMILY@example.jp").await;
    assert_eq!((right, right_to.as_str()), (303, "/forgot-user-id/sent"));
    assert_eq!((wrong, wrong_to.as_str()), (303, "/forgot-user-id/sent"));
    assert_eq!(without_token(&wrong_page), without_token(&right_page));
    assert!(right_page.text().contains("受け付けました"));

    // One mail to the address, listing both user IDs of that birth date only.
    let mut texts = Vec::new();
    eventually(Duration::from_secs(10), || {
        texts = smtp
            .messages()
            .iter()
            .filter_map(|raw| text_for(raw.as_bytes(), "family@example.jp"))
            .collect::<Vec<_>>();
        let done = !texts.is_empty();
        async move { done }
    })
    .await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    let mail = &texts[0];
    assert!(mail.contains("ユーザ IDのご案内"), "{mail}");
    assert!(
        mail.contains(&parent.user_id) && mail.contains(&child.user_id),
        "{mail}"
    );
    assert!(!mail.contains(&other.user_id), "{mail}");
    // The wrong birth date sent nothing, even after the mail worker had time for it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.messages().len(), 1);

    // Bad input: a clear message next to the field, nothing recorded, nothing sent.
    let before = count(
        &db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE event = 'user_id_reminder_requested'",
        &[],
    )
    .await;
    let long = "a".repeat(10_000);
    for (date, email) in [
        ("1970-02-30", "family@example.jp"),
        ("2999-01-01", "family@example.jp"),
        ("1970-01-02", "family@example.jp\r\nBcc: x@example.jp"),
        ("1970-01-02", long.as_str()),
        (long.as_str(), "family@example.jp"),
    ] {
        let (status, _, page) = ask(&b, date, email).await;
        assert_eq!(status, 200, "{}", page.summary());
        assert!(page.body.contains("role=\"alert\""), "{}", page.summary());
    }
    let after = count(
        &db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE event = 'user_id_reminder_requested'",
        &[],
    )
    .await;
    assert_eq!(before, after);

    // The other society does not know these members.
    let k = Browser::new(&app, &host_of("kanekakenpo"));
    ask(&k, "1970-01-02", "family@example.jp").await;

    // Too many requests from one address (ten in a quarter of an hour, over all
    // societies): answered the same, nothing done.
    for _ in 0..12 {
        let (status, to, _) = ask(&b, "1970-01-02", "family@example.jp").await;
        assert_eq!((status, to.as_str()), (303, "/forgot-user-id/sent"));
    }
    let counted = |event: &'static str| {
        let db = Arc::clone(&db);
        async move {
            count(
                &db,
                "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE event = $1",
                &[Arg::Text(event)],
            )
            .await
        }
    };
    assert_eq!(counted("user_id_reminder_requested").await, 10);
    assert_eq!(counted("user_id_reminder_throttled").await, 5);
}
