//! 「プロフィール変更」 → 「Eメール変更」 (manual §3-5) read from a real SMTP server: a
//! step-up, then a link to the new address; the address changes only when that link is
//! opened (in any browser), the old address is told, and the profile shows the pending
//! change until then. Bad input changes nothing; a newer request voids the older link.

use std::sync::Arc;

use crate::browser_like::{host_of, Browser};
use crate::db::{count, exec, member_id, value, Arg};
use crate::harness::{free_port, on_both_backends, Backend, SmtpServer, TestDb};
use crate::otp::oathtool;
use crate::password_reset::{app_with_smtp, audit_count, mails, member_with_app};

on_both_backends!(an_address_changes_only_through_the_link_sent_to_it);

/// The link of a mail that follows `label` on its own line: its path and query.
fn link_after(mail: &str, label: &str) -> String {
    let line = mail
        .lines()
        .skip_while(|l| !l.contains(label))
        .nth(1)
        .unwrap_or_else(|| panic!("no link in:\n{mail}"))
        .trim();
    let rest = line.strip_prefix("http://").unwrap_or(line);
    rest[rest.find('/').unwrap()..].to_owned()
}

async fn an_address_changes_only_through_the_link_sent_to_it(backend: Backend) {
    let smtp = SmtpServer::start(free_port());
    let db = Arc::new(TestDb::fresh(backend).await);
    let app = app_with_smtp(Arc::clone(&db), &smtp);
    let m = member_with_app(&app, &smtp, "daiwakenpo").await;
    let id = member_id(&db, "daiwakenpo", &m.user_id).await;
    let b = &m.browser;
    let email_of = || {
        let db = Arc::clone(&db);
        let id = id.clone();
        async move {
            value(
                &db,
                "SELECT email FROM members WHERE id = $1",
                &[Arg::Text(&id)],
            )
            .await
            .unwrap()
        }
    };

    // 「プロフィール変更」 → 「Eメール変更」; the sign-in is old, so a step-up first:
    // the password, then the app's code (§3-5 ④⑤).
    let profile = b.get("/profile").await;
    assert!(
        profile.text().contains("Eメール変更"),
        "{}",
        profile.summary()
    );
    exec(
        &db,
        "UPDATE sessions SET authenticated_at = authenticated_at - 3600 WHERE member_id = $1",
        &[Arg::Text(&id)],
    )
    .await;
    let gate = b.get("/profile/email").await;
    assert!(
        gate.is_see_other("/reauth?return_to=/profile/email"),
        "{}",
        gate.summary()
    );
    let reauth = b.follow(gate).await;
    assert!(reauth
        .text()
        .contains("続行する際には再度認証してください。"));
    let next = b
        .fill(
            "/reauth?return_to=/profile/email",
            &[("password", &m.password), ("return_to", "/profile/email")],
        )
        .await;
    let factor = b.follow(next).await;
    assert!(factor.is_see_other("/login/factor"), "{}", factor.summary());
    let otp = b
        .fill("/login/otp", &[("code", &oathtool(&m.key, 30))])
        .await;
    let back = b.follow(otp).await;
    assert!(back.is_see_other("/profile/email"), "{}", back.summary());

    // ⑥: the current address is shown and in the field.
    let page = b.get("/profile/email").await;
    assert!(
        page.text().contains("メールアドレス更新"),
        "{}",
        page.summary()
    );
    assert!(page.body.contains(&format!("value=\"{}\"", m.email)));

    // Bad input: a message next to the field, nothing sent, nothing changed.
    let long = format!("{}@example.jp", "a".repeat(10_000));
    for bad in [
        "new@example.jp\r\nBcc: x@example.jp",
        "new\u{0}@example.jp",
        long.as_str(),
        "not-an-address",
        m.email.as_str(),
    ] {
        let r = b.fill("/profile/email", &[("email", bad)]).await;
        assert_eq!(r.status, 200, "{}", r.summary());
        assert!(r.body.contains("role=\"alert\""), "{}", r.summary());
    }
    assert_eq!(
        count(
            &db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM one_time_tokens WHERE purpose = 'email_change'",
            &[]
        )
        .await,
        0
    );

    // A first request, then a second one: the second voids the first.
    for new in ["first.new@example.jp", "second.new@example.jp"] {
        let sent = b.fill("/profile/email", &[("email", new)]).await;
        assert!(
            sent.is_see_other("/profile?email=sent"),
            "{}",
            sent.summary()
        );
    }
    let profile = b.get("/profile?email=sent").await;
    let text = profile.text();
    assert!(text.contains("確認メールをお送りしました"), "{text}");
    assert!(text.contains("変更手続き中"), "{text}");
    assert!(text.contains("second.new@example.jp"), "{text}");
    // Not changed yet.
    assert_eq!(email_of().await, m.email);

    let first = mails(&smtp, "first.new@example.jp", "メールアドレス変更の確認", 1).await;
    let second = mails(
        &smtp,
        "second.new@example.jp",
        "メールアドレス変更の確認",
        1,
    )
    .await;
    let first_link = link_after(&first[0], "メールアドレスを変更する：");
    let link = link_after(&second[0], "メールアドレスを変更する：");
    let anyone = Browser::new(&app, &host_of("daiwakenpo"));
    assert_eq!(anyone.get(&first_link).await.status, 400);
    // Nor by posting its token straight away.
    let first_token = first_link.rsplit('=').next().unwrap();
    let posted = anyone
        .submit("/email/change", &[("token", first_token)])
        .await;
    assert_eq!(posted.status, 400, "{}", posted.summary());
    // Not on the other society's host; not tampered or cut short.
    let k = Browser::new(&app, &host_of("kanekakenpo"));
    assert_eq!(k.get(&link).await.status, 400);
    let token = link.rsplit('=').next().unwrap();
    let flipped = format!(
        "/email/change?token={}{}",
        &token[..63],
        if token.ends_with('0') { '1' } else { '0' }
    );
    for bad in [flipped, format!("/email/change?token={}", &token[..30])] {
        let r = anyone.get(&bad).await;
        assert_eq!(r.status, 400, "{}", r.summary());
        assert!(r.body.contains("role=\"alert\""));
    }
    assert_eq!(email_of().await, m.email);

    // The link, opened in a browser that is not signed in, shows the new address and
    // 「メールアドレスを変更する」; opening it changes nothing (a mail scanner may open it).
    let opened = anyone.get(&link).await;
    assert_eq!(opened.status, 200, "{}", opened.summary());
    assert!(opened.text().contains("second.new@example.jp"));
    assert!(opened.text().contains("メールアドレスを変更する"));
    assert_eq!(email_of().await, m.email);
    let done = anyone.fill(&link, &[("token", token)]).await;
    assert_eq!(done.status, 200, "{}", done.summary());
    assert!(done.text().contains("メールアドレスを変更しました"));
    assert_eq!(email_of().await, "second.new@example.jp");
    let profile = b.get("/profile").await;
    assert!(profile.text().contains("second.new@example.jp"));
    assert!(!profile.text().contains("変更手続き中"));
    // The old address is told; the link works once.
    let notice = mails(&smtp, &m.email, "メールアドレスが変更されました", 1).await;
    assert_eq!(notice.len(), 1);
    assert!(notice[0].contains("second.new@example.jp"), "{}", notice[0]);
    assert_eq!(anyone.get(&link).await.status, 400);
    assert_eq!(
        anyone
            .submit("/email/change", &[("token", token)])
            .await
            .status,
        400
    );
    assert_eq!(audit_count(&db, "email_changed").await, 1);
    assert_eq!(audit_count(&db, "email_change_requested").await, 2);

    // Five requests an hour per member; the sixth is refused next to the field.
    for i in 0..3 {
        let new = format!("more{i}@example.jp");
        let r = b.fill("/profile/email", &[("email", &new)]).await;
        assert!(r.is_see_other("/profile?email=sent"), "{}", r.summary());
    }
    let refused = b
        .fill("/profile/email", &[("email", "one.more@example.jp")])
        .await;
    assert_eq!(refused.status, 200);
    assert!(
        refused.text().contains("しばらく時間をおいて"),
        "{}",
        refused.summary()
    );
}
