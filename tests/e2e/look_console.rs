//! 「デザイン」 and 「サービスメニュー」: colours below 4.5:1 are refused with the measured ratio
//! and a suggestion; a logo and a service icon uploaded reach the member top page once
//! published, in the order set; SVG with a script, an event handler or an outside reference,
//! a PNG named .svg and a 20 MB file are refused and change nothing.

use crate::admin::signed_in_admin;
use crate::browser_like::{signed_in_member, unescape_html, Browser, Reply, DAIWA_HOST};
use crate::db::count;
use crate::harness::{on_both_backends, Backend, TestApp};

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let img = image::RgbaImage::from_pixel(w, h, image::Rgba([11, 79, 138, 255]));
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

const ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><title>健康相談</title><circle cx="12" cy="12" r="9" fill="#0b4f8a"/></svg>"##;

/// POSTs the look form with `file` as the logo (or none).
async fn post_look(
    admin: &Browser,
    primary: &str,
    accent: &str,
    file: Option<(&str, &[u8])>,
) -> Reply {
    let page = admin.get("/admin/look").await;
    assert_eq!(page.status, 200, "{}", page.summary());
    let token = page.csrf_token();
    let fields = [
        ("csrf_token", token.as_str()),
        ("primary_color", primary),
        ("accent_color", accent),
        ("welcome", "ようこそ。"),
    ];
    let (name, bytes) = file.unwrap_or(("", b""));
    admin
        .post_file("/admin/look", &fields, "logo", name, bytes)
        .await
}

async fn post_service(
    admin: &Browser,
    path: &str,
    title: &str,
    url: &str,
    file: (&str, &[u8]),
) -> Reply {
    let page = admin.get(path).await;
    assert_eq!(page.status, 200, "{}", page.summary());
    let token = page.csrf_token();
    admin
        .post_file(
            path,
            &[
                ("csrf_token", &token),
                ("title", title),
                ("url", url),
                ("visible", "true"),
            ],
            "image",
            file.0,
            file.1,
        )
        .await
}

async fn drafts(app: &TestApp) -> i64 {
    count(
        &app.db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM tenant_drafts",
        &[],
    )
    .await
}

on_both_backends!(colours_logo_and_icons_go_through_the_draft_to_the_member_top_page);

async fn colours_logo_and_icons_go_through_the_draft_to_the_member_top_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let member = signed_in_member(&app, "daiwakenpo").await;
    let (admin, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "look@daiwa.example.jp",
        "admin",
    )
    .await;
    let page = admin.get("/admin/look").await;
    // The seed colours pass: 8.40:1 for white on daiwakenpo's blue.
    assert!(page.text().contains("8.40:1"), "{}", page.summary());
    assert!(!page.text().contains("基準未満"));

    // Too light a blue: refused with its ratio and a darker suggestion; nothing saved.
    let refused = post_look(&admin, "#7fa8d8", "#d4a017", None).await;
    assert_eq!(refused.status, 400, "{}", refused.summary());
    let text = refused.text();
    assert!(text.contains("コントラスト比が 2.4"), "{text}");
    assert!(text.contains("基準の 4.5:1 に届きません"), "{text}");
    assert!(refused.body.contains("role=\"alert\""));
    let suggestion = text.split("基準の 4.5:1 に届きません。").nth(1).unwrap();
    assert!(suggestion.starts_with('#'), "{suggestion}");
    assert_eq!(drafts(&app).await, 0);

    // Bad logos: each refused next to the field, nothing stored.
    let script = r#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    let onload = r#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="9" height="9"/></svg>"#;
    let outside = r#"<svg xmlns="http://www.w3.org/2000/svg"><image href="https://evil.example/x.png" width="9" height="9"/></svg>"#;
    for (name, bytes, message) in [
        (
            "logo.svg",
            script.as_bytes().to_vec(),
            "スクリプトや外部への参照",
        ),
        (
            "logo.svg",
            onload.as_bytes().to_vec(),
            "スクリプトや外部への参照",
        ),
        (
            "logo.svg",
            outside.as_bytes().to_vec(),
            "スクリプトや外部への参照",
        ),
        ("logo.svg", png(64, 64), "名前（拡張子）と合っていません"),
        ("logo.png", png(4, 4), "16〜2000ピクセル"),
    ] {
        let reply = post_look(&admin, "#0b4f8a", "#d4a017", Some((name, &bytes))).await;
        assert_eq!(reply.status, 400, "{name}: {}", reply.summary());
        assert!(
            reply.body.contains("id=\"logo-error\" role=\"alert\""),
            "{}",
            reply.summary()
        );
        assert!(
            reply.text().contains(message),
            "{name}: {}",
            reply.summary()
        );
    }
    let big = vec![b'x'; 20 * 1024 * 1024];
    assert_eq!(
        post_look(&admin, "#0b4f8a", "#d4a017", Some(("big.png", &big)))
            .await
            .status,
        413
    );
    let stored = count(
        &app.db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM tenant_assets",
        &[],
    )
    .await;
    assert_eq!(stored, 0, "a refused image was stored");
    assert_eq!(drafts(&app).await, 0);

    // A new logo and a darker blue go into the draft.
    let logo = png(128, 128);
    let saved = post_look(&admin, "#0a4a80", "#d4a017", Some(("新ロゴ.png", &logo))).await;
    assert!(
        saved.is_see_other("/admin/settings/review?done=saved"),
        "{}",
        saved.summary()
    );
    let review = admin.follow(saved).await;
    assert!(review.text().contains("#0a4a80"), "{}", review.summary());

    // A service with an SVG icon, placed first; an http:// address is refused.
    let plain = post_service(
        &admin,
        "/admin/services/new",
        "健康相談",
        "http://example.jp/soudan",
        ("icon.svg", ICON.as_bytes()),
    )
    .await;
    assert_eq!(plain.status, 400, "{}", plain.summary());
    assert!(plain.text().contains("https:// で始まる"));
    let added = post_service(
        &admin,
        "/admin/services/new",
        "健康相談",
        "https://example.jp/soudan",
        ("icon.svg", ICON.as_bytes()),
    )
    .await;
    assert!(
        added.is_see_other("/admin/services?done=saved"),
        "{}",
        added.summary()
    );
    let list = admin.get("/admin/services").await;
    let n = list.body.matches("action=\"/admin/services/").count();
    assert!(n > 0);
    for _ in 0..10 {
        let list = admin.get("/admin/services").await;
        // Move the new service up until it is first.
        let first_row = list.body.split("<tbody>").nth(1).unwrap();
        let first_row = &first_row[..first_row.find("</tr>").unwrap()];
        if first_row.contains("健康相談") {
            break;
        }
        let at = list.body.find("健康相談").unwrap();
        let row = &list.body[at..];
        let action = row.find("/arrange\">").unwrap();
        let start = row[..action].rfind("/admin/services/").unwrap();
        let path = format!("{}/arrange", &row[start..action]);
        let moved = admin
            .post(
                &path,
                &[("action", "up"), ("csrf_token", &list.csrf_token())],
            )
            .await;
        assert_eq!(moved.status, 303, "{}", moved.summary());
    }
    // Hide 「医療費のお知らせ」 through its edit page.
    let list = admin.get("/admin/services").await;
    let at = list.body.find("医療費のお知らせ").unwrap();
    let row = &list.body[at..];
    let edit = row.find("\">編集").unwrap();
    let start = row[..edit].rfind("href=\"").unwrap() + 6;
    let edit_path = row[start..edit].to_owned();
    let form = admin.get(&edit_path).await;
    let url = unescape_html(
        form.body
            .split("name=\"url\" type=\"url\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap(),
    );
    let hidden = admin
        .post_file(
            &edit_path,
            &[
                ("csrf_token", &form.csrf_token()),
                ("title", "医療費のお知らせ"),
                ("url", &url),
            ],
            "image",
            "",
            b"",
        )
        .await;
    assert!(
        hidden.is_see_other("/admin/services?done=saved"),
        "{}",
        hidden.summary()
    );

    // Nothing reaches members before 「公開」.
    let top = member.browser.get("/").await;
    assert!(!top.text().contains("健康相談"));
    assert!(top.text().contains("医療費のお知らせ"));
    let review = admin.get("/admin/settings/review").await;
    let published = admin
        .post(
            "/admin/settings/publish",
            &[("csrf_token", &review.csrf_token())],
        )
        .await;
    assert_eq!(published.status, 303, "{}", published.summary());

    // Published: the new logo, the new service first with its icon, the hidden one gone.
    let top = member.browser.get("/").await;
    let body = unescape_html(&top.body);
    let logo_at = body.find("/static/uploads/").expect("the uploaded logo");
    let logo_path = &body[logo_at..];
    let logo_path = &logo_path[..logo_path.find('"').unwrap()];
    let served = member.browser.get(logo_path).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.headers["content-type"], "image/png");
    assert!(served.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    let services = &body[body.find("class=\"service").expect("services")..];
    let first = services.find("健康相談").unwrap();
    let checkup = services.find("健診予約").unwrap();
    assert!(first < checkup, "the new service is not first");
    assert!(
        !body.contains("医療費のお知らせ"),
        "a hidden service is shown"
    );
    assert!(body.contains("https://example.jp/soudan"));
    let css = member.browser.get("/theme.css?v=x").await;
    assert!(css.body.contains("#0a4a80"));
}
