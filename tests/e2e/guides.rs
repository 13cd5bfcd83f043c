//! The first login of each seed society exactly as its printed guide shows it (the tenant
//! files as `tenants/` has them): the screens in the guide's order, the method registered
//! at the next sign-in, a member who leaves part-way resuming where they left, and what
//! the guides need from the console: user IDs kept from the old system, an address the
//! society corrects (FAQ Q3), the order edited on 「設定」.

use serde_json::json;

use crate::admin::{api, api_token, signed_in_admin};
use crate::browser_like::{
    add_some_member, first_login_step, fresh_password, fresh_user_id, hidden_value, login_ok,
    mails_to, Browser, Reply, DAIWA_HOST, KANEKA_HOST,
};
use crate::db::{count, member_id};
use crate::harness::{on_both_backends, Backend, TestApp, TestDb, DAIWA, KANEKA};
use crate::otp::{oathtool, shown_key};

async fn as_printed(backend: Backend) -> TestApp {
    TestApp::spawn_on(TestDb::fresh_as_printed(backend).await, |_| {})
}

/// The page title (`<h1>`) of a reply.
fn heading(page: &Reply) -> String {
    let Some(at) = page.body.find("<h1") else {
        return String::new();
    };
    let rest = &page.body[at..];
    let text = &rest[rest.find('>').unwrap() + 1..rest.find("</h1>").unwrap()];
    crate::browser_like::unescape_html(text).trim().to_owned()
}

/// GETs `path` and asserts that it is the screen titled `title`.
async fn screen(b: &Browser, path: &str, title: &str) -> Reply {
    let page = b.get(path).await;
    assert_eq!(page.status, 200, "{path}: {}", page.summary());
    assert_eq!(heading(&page), title, "{path}: {}", page.summary());
    page
}

async fn accept_terms(b: &Browser) -> Reply {
    let terms = b.get("/login/terms").await;
    let version = hidden_value(&terms.body, "version").expect("terms version");
    first_login_step(b, "/login/terms", &[("version", &version)]).await
}

/// The first code of `len` digits in a mail text.
fn code_in(text: &str, len: usize) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == len)
        .unwrap_or_else(|| panic!("no code in {text}"))
        .to_owned()
}

on_both_backends!(
    daiwakenpo_follows_the_manual_and_registers_the_method_at_the_next_login,
    kanekakenpo_follows_its_guide_keeps_the_user_id_and_resumes_where_the_member_left,
    a_roster_keeps_the_user_ids_of_the_old_system,
    the_society_corrects_a_members_address_and_both_addresses_are_told,
    the_order_is_a_setting_checked_before_it_is_saved,
    a_passkey_made_on_the_guides_host_works_on_the_societys_own_host,
);

async fn daiwakenpo_follows_the_manual_and_registers_the_method_at_the_next_login(
    backend: Backend,
) {
    let app = as_printed(backend).await;
    let letter = add_some_member(&app.db, "daiwakenpo");
    // ① the guide's address: www.daiwakenpo.…
    let b = Browser::new(&app, &format!("www.{DAIWA_HOST}"));
    let (user_id, password) = (fresh_user_id(), fresh_password());
    // ③ 仮ユーザ IDと仮パスワード 「ログイン」 → ⑤ 生年月日の入力
    let next = login_ok(&b, &letter.user_id, &letter.password).await;
    assert!(next.is_see_other("/login/birth-date"), "{}", next.summary());
    let next = first_login_step(
        &b,
        "/login/birth-date",
        &[("birth_date", &letter.birth_date)],
    )
    .await;
    // ⑥ 利用規約の確認 「同意する」
    assert!(next.is_see_other("/login/terms"), "{}", next.summary());
    let terms = b.get("/login/terms").await;
    assert!(terms.text().contains("同意する"), "{}", terms.summary());
    let next = accept_terms(&b).await;
    // ⑦ ユーザ IDの変更, with 認証方式 (生体認証 / OTP認証) on the same screen, 「実行」
    assert!(next.is_see_other("/login/user-id"), "{}", next.summary());
    let page = b.get("/login/user-id").await;
    let text = page.text();
    for label in ["ユーザ ID", "生体認証", "OTP認証", "実行"] {
        assert!(text.contains(label), "{label}: {}", page.summary());
    }
    assert!(page.body.contains("name=\"method\""), "{}", page.summary());
    let next = first_login_step(
        &b,
        "/login/user-id",
        &[("user_id", &user_id), ("method", "totp")],
    )
    .await;
    // ⑧ パスワード更新画面 「送信」
    assert!(next.is_see_other("/login/password"), "{}", next.summary());
    screen(&b, "/login/password", "パスワード更新").await;
    let next = first_login_step(
        &b,
        "/login/password",
        &[("password", &password), ("password_confirm", &password)],
    )
    .await;
    // ⑨ メールアドレスの更新
    assert!(next.is_see_other("/login/email"), "{}", next.summary());
    let next = first_login_step(&b, "/login/email", &[("email", &letter.email)]).await;
    // ⑩ the top page with the service menu; the method is not registered yet.
    assert!(next.is_see_other("/"), "{}", next.summary());
    let top = b.follow(next).await;
    let text = top.text();
    assert!(
        text.contains("初回ログインが完了しました") && text.contains("健診予約"),
        "{}",
        top.summary()
    );
    let devices = count(
        &app.db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM mfa_devices d JOIN members m ON m.id = d.member_id \
         WHERE m.user_id = $1",
        &[crate::db::Arg::Text(&user_id)],
    )
    .await;
    assert_eq!(devices, 0, "a factor was registered at the first login");
    // §2-2 ログアウト
    let out = b.fill("/logout", &[]).await;
    assert_eq!(out.status, 303, "{}", out.summary());

    // §2-4: the next login asks for the app first, and for nothing else.
    let b = Browser::new(&app, &format!("www.{DAIWA_HOST}"));
    let next = login_ok(&b, &user_id, &password).await;
    assert!(next.is_see_other("/login/totp"), "{}", next.summary());
    assert!(b.cookie("portal_session").is_none());
    for elsewhere in ["/login/terms", "/login/email", "/login/factor"] {
        let r = b.get(elsewhere).await;
        assert!(
            r.is_see_other("/login/totp"),
            "{elsewhere}: {}",
            r.summary()
        );
    }
    let profile = b.get("/profile").await;
    assert_eq!(profile.status, 303, "{}", profile.summary());
    let page = b.get("/login/totp").await;
    assert!(page.body.contains("スキャンできませんか？"));
    let key = shown_key(&page);
    let done = b
        .fill(
            "/login/totp",
            &[("device_name", "iPhone"), ("code", &oathtool(&key, 0))],
        )
        .await;
    assert!(done.is_see_other("/login/next"), "{}", done.summary());
    let next = b.follow(done).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    let top = b.follow(next).await;
    let text = top.text();
    assert!(text.contains(&letter.name) && text.contains("健診予約"));
    assert!(
        !text.contains("初回ログインが完了しました"),
        "{}",
        top.summary()
    );
}

async fn kanekakenpo_follows_its_guide_keeps_the_user_id_and_resumes_where_the_member_left(
    backend: Backend,
) {
    let app = as_printed(backend).await;
    let letter = add_some_member(&app.db, "kanekakenpo");
    let host = format!("www.{KANEKA_HOST}");
    let b = Browser::new(&app, &host);
    let password = fresh_password();
    // 【2】 ID and password of the letter → 【3】 生年月日 → 【4】 「同意する」
    let next = login_ok(&b, &letter.user_id, &letter.password).await;
    assert!(next.is_see_other("/login/birth-date"), "{}", next.summary());
    let next = first_login_step(
        &b,
        "/login/birth-date",
        &[("birth_date", &letter.birth_date)],
    )
    .await;
    assert!(next.is_see_other("/login/terms"), "{}", next.summary());
    let next = accept_terms(&b).await;
    assert!(next.is_see_other("/login/email"), "{}", next.summary());

    // The member closes the browser here: signing in again resumes at 【5】, without the
    // birth date asked again.
    let b = Browser::new(&app, &host);
    let next = login_ok(&b, &letter.user_id, &letter.password).await;
    assert!(next.is_see_other("/login/email"), "{}", next.summary());

    // 【5】 メールアドレスを確認 (changing it is optional) → 【6】 the mailed link
    let page = b.get("/login/email").await;
    assert!(page.body.contains(&letter.email), "{}", page.summary());
    let next = first_login_step(&b, "/login/email", &[("email", &letter.email)]).await;
    assert!(
        next.is_see_other("/login/email/confirm"),
        "{}",
        next.summary()
    );
    let mails = mails_to(&b, &letter.email, 1).await;
    let link = mails
        .last()
        .and_then(|m| {
            m.split_whitespace()
                .find(|w| w.contains("/email/confirm?token="))
        })
        .expect("a confirmation link")
        .to_owned();
    // Mailed links keep the society's configured host, whichever host the member used.
    assert!(link.starts_with(&format!("http://{KANEKA_HOST}")), "{link}");
    // 【7】 back on the first screen, 「更新」
    let waiting = b.get("/login/email/confirm").await;
    assert!(waiting.text().contains("更新"), "{}", waiting.summary());
    assert_eq!(b.get(&link).await.status, 200);
    let next = b.get("/login/next").await;
    // 【8】 認証方法を選択 on its own screen; no user ID step: the letter's ID is kept.
    assert!(next.is_see_other("/login/method"), "{}", next.summary());
    let page = b.get("/login/method").await;
    let text = page.text();
    for label in [
        "生体認証",
        "ワンタイムパスワード認証（アプリ）",
        "ワンタイムパスワード認証（メール）",
    ] {
        assert!(text.contains(label), "{label}: {}", page.summary());
    }
    let refused = b.fill("/login/method", &[("method", "")]).await;
    assert_eq!(refused.status, 200);
    assert!(
        refused.body.contains("role=\"alert\""),
        "{}",
        refused.summary()
    );
    let next = first_login_step(&b, "/login/method", &[("method", "email_otp")]).await;
    // 【9】 新たなパスワード
    assert!(next.is_see_other("/login/password"), "{}", next.summary());
    let next = first_login_step(
        &b,
        "/login/password",
        &[("password", &password), ("password_confirm", &password)],
    )
    .await;
    // 【10】 初回ログインが完了しました, 【11】 ログアウト
    assert!(next.is_see_other("/"), "{}", next.summary());
    let top = b.follow(next).await;
    assert!(
        top.text().contains("初回ログインが完了しました"),
        "{}",
        top.summary()
    );
    assert!(top.body.contains("href=\"/logout\""), "{}", top.summary());
    assert_eq!(b.fill("/logout", &[]).await.status, 303);

    // 【2-6】 the next login mails a code to the registered address; the member enters it.
    let b = Browser::new(&app, &host);
    let next = login_ok(&b, &letter.user_id, &password).await;
    assert!(next.is_see_other("/login/email-otp"), "{}", next.summary());
    // 「迷惑メールに「no-reply@kosmo-web.jp」からのメールが振り分けられていないか」
    let page = b.get("/login/email-otp").await;
    assert!(
        page.text()
            .contains("「no-reply@kosmo-web.jp」からのメール"),
        "{}",
        page.summary()
    );
    let mails = mails_to(&b, &letter.email, 2).await;
    let code = code_in(mails.last().unwrap(), 6);
    let done = b.fill("/login/email-otp", &[("code", &code)]).await;
    assert!(done.is_see_other("/login/next"), "{}", done.summary());
    let next = b.follow(done).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    let top = b.follow(next).await;
    assert!(top.text().contains(&letter.name), "{}", top.summary());
    assert!(!top.text().contains("初回ログインが完了しました"));
    // The site says ユーザID as the society writes it, without a space.
    let login = Browser::new(&app, &host).get("/login").await;
    assert!(login.text().contains("ユーザID") && !login.text().contains("ユーザ ID"));
}

async fn a_roster_keeps_the_user_ids_of_the_old_system(backend: Backend) {
    let app = as_printed(backend).await;
    let (_admin, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "roster@daiwa.example.jp",
        "admin",
    )
    .await;
    let token = api_token(&app.db, "daiwakenpo", "roster@daiwa.example.jp", None);
    let taken = add_some_member(&app.db, "daiwakenpo");
    let upload = |csv: String| {
        let token = token.clone();
        let app = &app;
        async move {
            let client = reqwest::Client::builder()
                .resolve(DAIWA_HOST, app.member)
                .build()
                .unwrap();
            let url = format!(
                "http://{DAIWA_HOST}:{}/admin/api/v1/members/import?file_name=r.csv",
                app.member.port()
            );
            let resp = client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/octet-stream")
                .body(csv)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: serde_json::Value =
                serde_json::from_str(&resp.text().await.unwrap()).unwrap();
            (status, body)
        }
    };
    let head = "氏名,生年月日,メールアドレス,記号,番号,ユーザID\r\n";
    let bad = format!(
        "{head}旧姓 一郎,1975/1/2,ichiro@example.jp,8001,1,Old-Member1\r\n\
         旧姓 二郎,1976/1/2,jiro@example.jp,8001,2,ab\r\n\
         旧姓 三郎,1977/1/2,saburo@example.jp,8001,3,old-member1\r\n\
         旧姓 四郎,1978/1/2,shiro@example.jp,8001,4,{}\r\n",
        taken.user_id
    );
    let (status, report) = upload(bad).await;
    assert_eq!(status, 200, "{report}");
    assert!(report.get("import_id").is_none(), "{report}");
    let problems: Vec<(u64, &str)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["line"].as_u64().unwrap(), p["column"].as_str().unwrap()))
        .collect();
    assert_eq!(
        problems,
        [(3, "ユーザID"), (4, "ユーザID"), (5, "ユーザID")],
        "{report}"
    );

    let good = format!(
        "{head}旧姓 一郎,1975/1/2,ichiro@example.jp,8001,1,Old-Member1\r\n\
         新規 花子,1990/5/6,hanako@example.jp,8001,5,\r\n"
    );
    let (status, report) = upload(good).await;
    assert_eq!(status, 200, "{report}");
    let id = report["import_id"].as_str().unwrap().to_owned();
    let (status, _, committed) = api(
        &app,
        DAIWA_HOST,
        "POST",
        &format!("/members/imports/{id}/commit"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{committed}");
    let client = reqwest::Client::builder()
        .resolve(DAIWA_HOST, app.member)
        .build()
        .unwrap();
    let csv = client
        .get(format!(
            "http://{DAIWA_HOST}:{}/admin/api/v1/members/imports/{id}/credentials",
            app.member.port()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The kept ID is written as the society's rules store it (lower case) on the letter.
    let row = csv
        .lines()
        .find(|l| l.starts_with("旧姓 一郎,"))
        .unwrap_or_else(|| panic!("{csv}"));
    let cells: Vec<&str> = row.split(',').collect();
    assert_eq!(cells[6], "old-member1", "{row}");
    let temporary = cells[7];
    let drawn = csv.lines().find(|l| l.starts_with("新規 花子,")).unwrap();
    assert_ne!(drawn.split(',').nth(6), Some(""), "{drawn}");

    // The member signs in with the kept ID and the letter's password; the first login
    // does not ask for a new ID but still asks for the method, on its own screen.
    let b = Browser::new(&app, DAIWA_HOST);
    let next = login_ok(&b, "old-member1", temporary).await;
    assert!(next.is_see_other("/login/birth-date"), "{}", next.summary());
    let next = first_login_step(&b, "/login/birth-date", &[("birth_date", "1975-01-02")]).await;
    assert!(next.is_see_other("/login/terms"), "{}", next.summary());
    let next = accept_terms(&b).await;
    assert!(next.is_see_other("/login/method"), "{}", next.summary());
}

async fn the_society_corrects_a_members_address_and_both_addresses_are_told(backend: Backend) {
    let app = as_printed(backend).await;
    let letter = add_some_member(&app.db, "kanekakenpo");
    let other = add_some_member(&app.db, "daiwakenpo");
    let (admin, _) = signed_in_admin(
        &app,
        KANEKA_HOST,
        "kanekakenpo",
        "clerk@kaneka.example.jp",
        "admin",
    )
    .await;
    let token = api_token(&app.db, "kanekakenpo", "clerk@kaneka.example.jp", None);
    let id = member_id(&app.db, "kanekakenpo", &letter.user_id).await;
    let path = format!("/members/{id}/email");

    // Bad input changes nothing.
    for bad in ["not-an-address", "", &letter.email] {
        let (status, _, problem) = api(
            &app,
            KANEKA_HOST,
            "PUT",
            &path,
            Some(&token),
            Some(json!({"email": bad})),
        )
        .await;
        assert_eq!(status, 422, "{bad}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "email", "{problem}");
    }
    // Another society's member is not found.
    let foreign = format!(
        "/members/{}/email",
        member_id(&app.db, "daiwakenpo", &other.user_id).await
    );
    let (status, _, _) = api(
        &app,
        KANEKA_HOST,
        "PUT",
        &foreign,
        Some(&token),
        Some(json!({"email": "x@example.jp"})),
    )
    .await;
    assert_eq!(status, 404);

    let new = format!("new.{}", letter.email);
    let (status, _, member) = api(
        &app,
        KANEKA_HOST,
        "PUT",
        &path,
        Some(&token),
        Some(json!({"email": new})),
    )
    .await;
    assert_eq!(status, 200, "{member}");
    assert_eq!(member["email"], new.as_str(), "{member}");
    for address in [&letter.email, &new] {
        let mails = mails_to(&admin, address, 1).await;
        let notice = mails
            .iter()
            .find(|m| m.contains("メールアドレス変更のお知らせ"))
            .unwrap_or_else(|| panic!("no notice to {address}: {mails:?}"));
        assert!(notice.contains(&new) && notice.contains(&letter.email) && notice.contains(KANEKA));
    }
    let audited = count(
        &app.db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE event = 'member_email_changed' \
         AND member_id = $1",
        &[crate::db::Arg::Text(&id)],
    )
    .await;
    assert_eq!(audited, 1);

    // The console does the same through the member's page; it says what it will do first.
    let page = admin.get(&format!("/admin/members/{id}/email")).await;
    assert_eq!(page.status, 200, "{}", page.summary());
    assert!(
        page.text().contains("両方のアドレスにお知らせ"),
        "{}",
        page.summary()
    );
    let done = admin
        .fill(
            &format!("/admin/members/{id}/email"),
            &[("email", "third@example.jp")],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.summary());
    assert!(
        done.text().contains("メールアドレスを変更しました")
            && done.text().contains("third@example.jp"),
        "{}",
        done.summary()
    );
    let _ = DAIWA;
}

async fn the_order_is_a_setting_checked_before_it_is_saved(backend: Backend) {
    let app = as_printed(backend).await;
    add_some_member(&app.db, "kanekakenpo");
    let (_admin, _) = signed_in_admin(
        &app,
        KANEKA_HOST,
        "kanekakenpo",
        "rules@kaneka.example.jp",
        "admin",
    )
    .await;
    let token = api_token(&app.db, "kanekakenpo", "rules@kaneka.example.jp", None);
    let put = |edits: serde_json::Value| {
        let token = token.clone();
        let app = &app;
        async move {
            api(
                app,
                KANEKA_HOST,
                "PUT",
                "/settings/draft",
                Some(&token),
                Some(json!({ "edits": edits })),
            )
            .await
        }
    };
    let (_, _, draft) = api(
        &app,
        KANEKA_HOST,
        "GET",
        "/settings/draft",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        draft["settings"]["first_login"],
        json!({
            "steps": ["birth_date", "terms", "email", "email_link", "method", "password"],
            "factor_setup": "next_login"
        }),
        "{draft}"
    );
    // Each refused, with the rule in Japanese, and nothing saved.
    for steps in [
        json!(["terms", "birth_date", "email", "method", "password"]),
        json!(["birth_date", "terms", "email", "method"]),
        json!(["birth_date", "terms", "email", "password"]),
        json!([
            "birth_date",
            "terms",
            "user_id+method",
            "method",
            "password",
            "email"
        ]),
        json!([
            "birth_date",
            "terms",
            "email_link",
            "email",
            "method",
            "password"
        ]),
        json!([
            "birth_date",
            "terms",
            "terms",
            "email",
            "method",
            "password"
        ]),
        json!(["birth_date", "terms", "email", "nope", "password"]),
    ] {
        let (status, _, problem) = put(json!({ "first_login.steps": steps })).await;
        assert_eq!(status, 422, "{steps}: {problem}");
        assert_eq!(
            problem["errors"][0]["field"], "first_login.steps",
            "{problem}"
        );
    }
    let (_, _, draft) = api(
        &app,
        KANEKA_HOST,
        "GET",
        "/settings/draft",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(draft["saved"], false, "{draft}");

    // A good order: the review says what changes and whom it touches.
    let (status, _, draft) = put(json!({
        "first_login.steps": ["birth_date", "terms", "user_id+method", "password", "email", "email_link"],
        "first_login.factor_setup": "now",
    }))
    .await;
    assert_eq!(status, 200, "{draft}");
    let summary = draft["review"]["summary"].to_string();
    assert!(
        summary.contains("「メールアドレスの確認」") && summary.contains("→"),
        "{summary}"
    );
    assert!(
        summary.contains("初回ログインの最後に設定する"),
        "{summary}"
    );
    let impact = draft["review"]["impact"].to_string();
    assert!(impact.contains("初回ログインの途中の会員"), "{impact}");
    assert!(impact.contains("1 人"), "{impact}");
}

/// §2-3: the guide sends members to `www.daiwakenpo.…`, mailed links to `daiwakenpo.…`; a
/// passkey registered on either signs in on both.
async fn a_passkey_made_on_the_guides_host_works_on_the_societys_own_host(backend: Backend) {
    let app = as_printed(backend).await;
    let letter = add_some_member(&app.db, "daiwakenpo");
    let www = format!("www.{DAIWA_HOST}");
    let b = Browser::new(&app, &www);
    let (user_id, password) = (fresh_user_id(), fresh_password());
    login_ok(&b, &letter.user_id, &letter.password).await;
    first_login_step(
        &b,
        "/login/birth-date",
        &[("birth_date", &letter.birth_date)],
    )
    .await;
    accept_terms(&b).await;
    first_login_step(
        &b,
        "/login/user-id",
        &[("user_id", &user_id), ("method", "passkey")],
    )
    .await;
    first_login_step(
        &b,
        "/login/password",
        &[("password", &password), ("password_confirm", &password)],
    )
    .await;
    let next = first_login_step(&b, "/login/email", &[("email", &letter.email)]).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    assert_eq!(b.fill("/logout", &[]).await.status, 303);

    // §2-3 ④ セキュリティキーの登録 at the next login, on the guide's host.
    let b = b.private_window(&app);
    let next = login_ok(&b, &user_id, &password).await;
    assert!(
        next.is_see_other("/login/passkey/setup"),
        "{}",
        next.summary()
    );
    let next = crate::passkeys::register(&b, "iPhone").await;
    assert!(next.is_see_other("/"), "{}", next.summary());

    // The same device on the society's own host (a mailed link's): the passkey signs in.
    let own = b.private_window(&app).at(DAIWA_HOST);
    let next = login_ok(&own, &user_id, &password).await;
    assert!(next.is_see_other("/login/factor"), "{}", next.summary());
    let next = crate::passkeys::sign_in(&own).await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    assert!(own.cookie("portal_session").is_some());
}
