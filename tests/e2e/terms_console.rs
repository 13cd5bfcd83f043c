//! 「利用規約」: a new version written as a draft, checked field by field, previewed as members
//! see it and published; a member accepts it at the next sign-in and the count moves; the
//! evidence CSV names the member, the version, the time and the address.

use crate::admin::signed_in_admin;
use crate::browser_like::{
    first_login_step, hidden_value, signed_in_member, unescape_html, DAIWA_HOST,
};
use crate::harness::{on_both_backends, Backend, TestApp};

on_both_backends!(a_new_terms_version_is_published_and_accepted_at_the_next_sign_in);

async fn a_new_terms_version_is_published_and_accepted_at_the_next_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let member = signed_in_member(&app, "daiwakenpo").await;
    let (admin, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "terms@daiwa.example.jp",
        "admin",
    )
    .await;
    let list = admin.get("/admin/terms").await;
    assert_eq!(list.status, 200, "{}", list.summary());
    let text = list.text();
    assert!(text.contains("2025-04"), "{text}");
    assert!(text.contains("現在の版"));
    assert!(text.contains("1人（100.0%）"), "{text}");

    // Bad input: every field named, nothing saved.
    let form = admin.get("/admin/terms/draft").await;
    assert_eq!(form.status, 200);
    let bad = admin
        .post(
            "/admin/terms/draft",
            &[
                ("version", "2025-04"),
                ("published_at", "2026-02-30"),
                ("title", "利用規約"),
                ("body", "  "),
                ("csrf_token", &form.csrf_token()),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.summary());
    for id in ["version-error", "published_at-error", "body-error"] {
        assert!(
            bad.body.contains(&format!("id=\"{id}\" role=\"alert\"")),
            "{id}"
        );
    }
    assert!(bad.text().contains("すでに使われています"));

    let body = "1. 本サービスは被保険者のためのものです。\n2. 改定後の規約に同意するまでご利用いただけません。";
    let saved = admin
        .post(
            "/admin/terms/draft",
            &[
                ("version", "2026-12"),
                ("published_at", "2026-12-01"),
                ("title", "利用規約（2026年12月改定）"),
                ("body", body),
                ("csrf_token", &form.csrf_token()),
            ],
        )
        .await;
    assert!(
        saved.is_see_other("/admin/terms/draft/review"),
        "{}",
        saved.summary()
    );
    let review = admin.follow(saved).await;
    assert!(review.text().contains("2026/12/01"), "{}", review.summary());
    let frame = admin.get("/admin/terms/draft/frame").await;
    assert_eq!(frame.status, 200);
    assert_eq!(frame.headers["x-frame-options"], "SAMEORIGIN");
    assert!(unescape_html(&frame.body).contains("改定後の規約に同意するまで"));

    let published = admin
        .post(
            "/admin/terms/publish",
            &[("csrf_token", &review.csrf_token())],
        )
        .await;
    assert!(
        published.is_see_other("/admin/terms?done=published"),
        "{}",
        published.summary()
    );
    let list = admin.follow(published).await;
    let text = list.text();
    assert!(text.contains("新しい利用規約を公開しました"), "{text}");
    assert!(text.contains("terms@daiwa.example.jp"), "{text}");
    assert!(text.contains("0人（0.0%）"), "{text}");

    // The member signs in again and must accept 2026-12 first.
    let b = &member.browser;
    let out = b.fill("/logout", &[]).await;
    assert_eq!(out.status, 303);
    let next = crate::passkeys::login(b, &member.user_id, &member.password).await;
    assert!(next.is_see_other("/login/terms"), "{}", next.summary());
    let terms = b.get("/login/terms").await;
    assert!(terms.text().contains("利用規約（2026年12月改定）"));
    assert!(terms.text().contains("2026/12/01"));
    assert_eq!(
        hidden_value(&terms.body, "version").as_deref(),
        Some("2026-12")
    );
    let next = first_login_step(b, "/login/terms", &[("version", "2026-12")]).await;
    assert!(next.is_see_other("/"), "{}", next.summary());

    let list = admin.get("/admin/terms").await;
    assert!(list.text().contains("1人（100.0%）"), "{}", list.summary());
    let csv = admin.get("/admin/terms/2026-12/evidence.csv").await;
    assert_eq!(csv.status, 200, "{}", csv.summary());
    let lines: Vec<&str> = csv
        .body
        .trim_start_matches('\u{feff}')
        .split("\r\n")
        .collect();
    assert_eq!(lines[0], "ユーザID,氏名,版,同意日時,IPアドレス");
    let row: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(row[0], member.user_id);
    assert_eq!(row[2], "2026-12");
    assert_eq!(row[4], "127.0.0.1");
    assert_eq!(
        admin.get("/admin/terms/1999-01/evidence.csv").await.status,
        404
    );
    // An operator's `portal tenant apply` of another change keeps who published it.
    let export = app.db.run(&["tenant", "export", "daiwakenpo"]);
    let toml = String::from_utf8(export.stdout).unwrap();
    assert!(toml.contains("version = \"2026-12\""), "{toml}");
    let changed = toml.replacen("display_name = \"", "display_name = \"（新）", 1);
    let applied = app.db.run_with_input(&["tenant", "apply", "-"], &changed);
    assert!(
        applied.status.success(),
        "{}",
        crate::harness::stderr(&applied)
    );
    let renamed = crate::harness::eventually(std::time::Duration::from_secs(5), || {
        let admin = &admin;
        async move { admin.get("/admin/terms").await.text().contains("（新）") }
    })
    .await;
    assert!(renamed, "the applied file is not served");
    let page = admin.get("/admin/terms").await;
    assert!(
        page.text().contains("terms@daiwa.example.jp"),
        "{}",
        page.summary()
    );

    // Publishing again without a draft is refused.
    let again = admin
        .post(
            "/admin/terms/publish",
            &[("csrf_token", &list.csrf_token())],
        )
        .await;
    assert_eq!(again.status, 409);
}
