//! 「設定」: a society admin raises the password minimum in a draft, reviews what changes
//! and for how many members, previews it, publishes it, and the member side applies it at
//! once (a new password of 10 characters is refused; a member whose password is too short
//! chooses a new one after signing in); the admin publishes the first revision again and
//! the 10 characters are accepted. Bad input, missing tokens and operators change nothing;
//! the API does the same through the same service functions.

use serde_json::{json, Value};

use crate::admin::{api, api_token, signed_in_admin};
use crate::browser_like::{
    add_some_member, first_login_step, hidden_value, login_ok, unescape_html, walk_first_login,
    Browser, Reply, DAIWA_HOST,
};
use crate::db::{count, rows, Arg};
use crate::harness::{on_both_backends, Backend, TestApp};

/// The fields a browser would submit from the settings form: text inputs and textareas
/// with their values, checked boxes and radios.
fn form_fields(html: &str) -> Vec<(String, String)> {
    let form = &html[html
        .find("action=\"/admin/settings\"")
        .expect("the settings form")..];
    let form = &form[..form.find("</form>").unwrap()];
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!(" {name}=\"");
        let start = tag.find(&key)? + key.len();
        let end = tag[start..].find('"')? + start;
        Some(unescape_html(&tag[start..end]))
    };
    let mut out = Vec::new();
    for part in form.split("<input").skip(1) {
        let tag = &part[..part.find('>').unwrap()];
        let (Some(name), kind) = (attr(tag, "name"), attr(tag, "type").unwrap_or_default()) else {
            continue;
        };
        let value = attr(tag, "value").unwrap_or_default();
        match kind.as_str() {
            "checkbox" | "radio" if !tag.contains(" checked") => {}
            _ => out.push((name, value)),
        }
    }
    // A <select> sends its selected option (the first where none is marked).
    for part in form.split("<select").skip(1) {
        let tag = &part[..part.find('>').unwrap()];
        let options = &part[..part.find("</select>").unwrap()];
        let chosen = options
            .split("<option")
            .skip(1)
            .find(|o| o[..o.find('>').unwrap()].contains(" selected"))
            .or_else(|| options.split("<option").nth(1));
        let value = chosen.and_then(|o| attr(&o[..o.find('>').unwrap()], "value"));
        out.push((attr(tag, "name").unwrap(), value.unwrap_or_default()));
    }
    for part in form.split("<textarea").skip(1) {
        let tag = &part[..part.find('>').unwrap()];
        let body = &part[part.find('>').unwrap() + 1..part.find("</textarea>").unwrap()];
        out.push((attr(tag, "name").unwrap(), unescape_html(body)));
    }
    out
}

/// The form with `name` set to `value` (replacing what it held).
fn with(mut fields: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    fields.retain(|(k, _)| k != name);
    fields.push((name.to_owned(), value.to_owned()));
    fields
}

async fn submit_settings(b: &Browser, fields: &[(String, String)]) -> Reply {
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    b.post("/admin/settings", &refs).await
}

/// A member of daiwakenpo at the first login's password step.
async fn at_password_step(app: &TestApp) -> Browser {
    let letter = add_some_member(&app.db, "daiwakenpo");
    let b = Browser::new(app, DAIWA_HOST);
    let next = login_ok(&b, &letter.user_id, &letter.password).await;
    assert!(next.is_see_other("/login/birth-date"), "{}", next.summary());
    let next = first_login_step(
        &b,
        "/login/birth-date",
        &[("birth_date", &letter.birth_date)],
    )
    .await;
    let terms = b.get("/login/terms").await;
    let version = hidden_value(&terms.body, "version").unwrap();
    assert!(next.is_see_other("/login/terms"));
    let next = first_login_step(&b, "/login/terms", &[("version", &version)]).await;
    assert!(next.is_see_other("/login/user-id"), "{}", next.summary());
    let user_id = crate::browser_like::fresh_user_id();
    let next = first_login_step(
        &b,
        "/login/user-id",
        &[("user_id", &user_id), ("method", "passkey")],
    )
    .await;
    assert!(next.is_see_other("/login/password"), "{}", next.summary());
    b
}

async fn audit_rows(app: &TestApp, event: &str) -> Vec<Vec<Option<String>>> {
    rows(
        &app.db,
        "SELECT a.detail, a.before_value, a.after_value FROM audit_events a \
         JOIN tenants t ON t.id = a.tenant_id WHERE t.slug = 'daiwakenpo' AND a.event = $1 \
         ORDER BY a.id",
        &[Arg::Text(event)],
    )
    .await
}

on_both_backends!(
    a_published_rule_applies_at_once_and_a_restored_revision_takes_it_back,
    bad_settings_change_nothing,
    the_api_edits_reviews_publishes_and_restores,
    the_first_login_order_is_chosen_by_number_on_the_form,
);

const TEN: &str = "Kx7#mQ2!pL";

async fn a_published_rule_applies_at_once_and_a_restored_revision_takes_it_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A member whose password has 10 characters, and one about to choose a password.
    let letter = add_some_member(&app.db, "daiwakenpo");
    let member = Browser::new(&app, DAIWA_HOST);
    let member_id = crate::browser_like::fresh_user_id();
    walk_first_login(&member, &letter, &member_id, TEN).await;
    let newcomer = at_password_step(&app).await;
    let page = newcomer.get("/login/password").await;
    assert!(page.text().contains("8文字以上"), "{}", page.summary());

    let (admin, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "rules@daiwa.example.jp",
        "admin",
    )
    .await;
    let form = admin.get("/admin/settings").await;
    assert_eq!(form.status, 200, "{}", form.summary());
    assert!(form.text().contains("パスワードの最小文字数"));
    assert!(form.text().contains("下書きはありません"));
    let fields = with(form_fields(&form.body), "password__min_length", "12");
    let fields = with(fields, "csrf_token", &form.csrf_token());
    let saved = submit_settings(&admin, &fields).await;
    assert!(
        saved.is_see_other("/admin/settings/review?done=saved"),
        "{}",
        saved.summary()
    );

    // The review says what changes and for how many members; nothing is live yet.
    let review = admin.follow(saved).await;
    let text = review.text();
    assert!(
        text.contains("パスワードは12文字以上になります（現在は8文字以上）"),
        "{text}"
    );
    let active = count(
        &app.db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM members m JOIN tenants t ON t.id = m.tenant_id \
         WHERE t.slug = 'daiwakenpo' AND m.state = 'active'",
        &[],
    )
    .await;
    assert!(active >= 1);
    assert!(
        text.contains(&format!("対象になりうる利用中の会員：{active}人")),
        "{text}"
    );
    // daiwakenpo replaces factors by e-mail on a reset: the review says so.
    assert!(
        text.contains("メールだけでパスワードと二要素認証の両方を変えられます"),
        "{text}"
    );
    let page = newcomer.get("/login/password").await;
    assert!(
        page.text().contains("8文字以上"),
        "the draft leaked: {}",
        page.summary()
    );

    // The preview shows the draft to this admin only, framed by the console alone.
    let preview = admin.get("/admin/settings/preview").await;
    assert_eq!(preview.status, 200);
    assert_eq!(
        preview.body.matches("<iframe").count(),
        6,
        "{}",
        preview.summary()
    );
    for which in ["login", "top", "home"] {
        let frame = admin.get(&format!("/admin/settings/preview/{which}")).await;
        assert_eq!(frame.status, 200, "{}", frame.summary());
        assert_eq!(frame.headers["x-frame-options"], "SAMEORIGIN");
        assert!(unescape_html(&frame.body).contains("/admin/settings/preview/theme.css"));
    }
    let home = admin.get("/admin/settings/preview/home").await;
    assert!(home.text().contains("医療費"), "{}", home.summary());
    assert_eq!(admin.get("/admin/settings/preview/other").await.status, 404);
    let anonymous = Browser::new(&app, DAIWA_HOST);
    let refused = anonymous.get("/admin/settings/preview/login").await;
    assert!(
        refused.is_see_other("/admin/login"),
        "{}",
        refused.summary()
    );
    // Member pages are never framed.
    assert_eq!(member.get("/").await.headers["x-frame-options"], "DENY");

    // 「公開」
    let review = admin.get("/admin/settings/review").await;
    let published = admin
        .post(
            "/admin/settings/publish",
            &[("csrf_token", &review.csrf_token())],
        )
        .await;
    assert!(
        published.is_see_other("/admin/settings/history?done=published"),
        "{}",
        published.summary()
    );
    let history = admin.follow(published).await;
    let text = history.text();
    assert!(text.contains("公開しました"), "{text}");
    assert!(
        history
            .body
            .contains("第2版 <span class=\"state state-active\">公開中</span>"),
        "{text}"
    );
    assert!(text.contains("第1版"), "{text}");
    assert!(text.contains("rules@daiwa.example.jp"), "{text}");
    assert!(history.body.contains("href=\"/admin/settings/history/1\""));

    // At once on the member side: 10 characters are refused next to the field …
    let page = newcomer.get("/login/password").await;
    assert!(page.text().contains("12文字以上"), "{}", page.summary());
    let refused = newcomer
        .post(
            "/login/password",
            &[
                ("password", TEN),
                ("password_confirm", TEN),
                ("csrf_token", &page.csrf_token()),
            ],
        )
        .await;
    assert_eq!(refused.status, 200, "{}", refused.summary());
    assert!(refused.body.contains("role=\"alert\""));
    assert!(
        refused.text().contains("12文字以上"),
        "{}",
        refused.summary()
    );

    // … and the member whose password has 10 characters chooses a new one after signing in.
    let out = member.fill("/logout", &[]).await;
    assert!(out.status == 303, "{}", out.summary());
    let next = crate::passkeys::login(&member, &member_id, TEN).await;
    assert!(next.is_see_other("/login/password"), "{}", next.summary());
    let page = member.get("/login/password").await;
    assert!(
        page.text().contains("パスワードの規則が変わりました"),
        "{}",
        page.summary()
    );
    let longer = "Kx7#mQ2!pL-longer";
    let next = first_login_step(
        &member,
        "/login/password",
        &[("password", longer), ("password_confirm", longer)],
    )
    .await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    assert_eq!(
        audit_rows(&app, "settings_published").await.len(),
        1,
        "one publish event"
    );
    let published = &audit_rows(&app, "settings_published").await[0];
    let before: Value = serde_json::from_str(published[1].as_deref().unwrap()).unwrap();
    let after: Value = serde_json::from_str(published[2].as_deref().unwrap()).unwrap();
    assert_eq!(before["password.min_length"], 8);
    assert_eq!(after["password.min_length"], 12);

    // 「この版に戻す」: the confirmation says what changes back, then it is live again.
    let confirm = admin.get("/admin/settings/history/1").await;
    assert_eq!(confirm.status, 200, "{}", confirm.summary());
    assert!(
        confirm
            .text()
            .contains("パスワードは8文字以上になります（現在は12文字以上）"),
        "{}",
        confirm.summary()
    );
    let restored = admin
        .post(
            "/admin/settings/history/1",
            &[("csrf_token", &confirm.csrf_token())],
        )
        .await;
    assert!(
        restored.is_see_other("/admin/settings/history?done=restored"),
        "{}",
        restored.summary()
    );
    let history = admin.follow(restored).await;
    assert!(
        history
            .body
            .contains("第3版 <span class=\"state state-active\">公開中</span>"),
        "{}",
        history.summary()
    );
    assert!(history.text().contains("戻した版"));
    let page = newcomer.get("/login/password").await;
    let accepted = newcomer
        .post(
            "/login/password",
            &[
                ("password", TEN),
                ("password_confirm", TEN),
                ("csrf_token", &page.csrf_token()),
            ],
        )
        .await;
    assert!(
        accepted.is_see_other("/login/next"),
        "{}",
        accepted.summary()
    );
    let revisions = rows(
        &app.db,
        "SELECT CAST(r.number AS TEXT), CAST(r.restored_from AS TEXT) FROM tenant_revisions r \
         JOIN tenants t ON t.id = r.tenant_id WHERE t.slug = 'daiwakenpo' ORDER BY r.number",
        &[],
    )
    .await;
    assert_eq!(
        revisions,
        vec![
            vec![Some("1".into()), None],
            vec![Some("2".into()), None],
            vec![Some("3".into()), Some("1".into())],
        ]
    );
    assert_eq!(audit_rows(&app, "settings_restored").await.len(), 1);
}

async fn bad_settings_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (admin, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "rules@daiwa.example.jp",
        "admin",
    )
    .await;
    let form = admin.get("/admin/settings").await;
    let base = with(form_fields(&form.body), "csrf_token", &form.csrf_token());
    let cases: [(&str, &str, &str); 6] = [
        ("password__min_length", "abc", "数字で入力してください"),
        (
            "password__min_length",
            "200",
            "4〜128の数字で入力してください",
        ),
        (
            "password__max_length",
            "5",
            "最大文字数は最小文字数以上にしてください",
        ),
        (
            "contact",
            "窓口\u{7}です",
            "改行などの特殊な文字は使えません",
        ),
        ("totp__issuer", "A:B", "「:」（コロン）は使えません"),
        ("lockout__mode", "forever", "一覧から選んでください"),
    ];
    for (field, value, message) in cases {
        let reply = submit_settings(&admin, &with(base.clone(), field, value)).await;
        assert_eq!(reply.status, 400, "{field}={value}: {}", reply.summary());
        let error = format!("id=\"{field}-error\" role=\"alert\"");
        assert!(reply.body.contains(&error), "{field}: {}", reply.summary());
        assert!(
            reply.text().contains(message),
            "{field}: {}",
            reply.summary()
        );
        assert!(reply.text().contains("下書きは保存されていません"));
    }
    // No method at all.
    let mut none = base.clone();
    none.retain(|(k, _)| k != "mfa__methods");
    let reply = submit_settings(&admin, &none).await;
    assert_eq!(reply.status, 400);
    assert!(reply
        .text()
        .contains("二要素認証の方法を1つ以上選んでください"));
    let drafts = count(
        &app.db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM tenant_drafts",
        &[],
    )
    .await;
    assert_eq!(drafts, 0, "a refused form saved a draft");

    // Without the form's token: refused before any handler.
    let mut no_token = base.clone();
    no_token.retain(|(k, _)| k != "csrf_token");
    assert_eq!(submit_settings(&admin, &no_token).await.status, 403);
    // Nothing to publish yet.
    let refused = admin
        .post(
            "/admin/settings/publish",
            &[("csrf_token", &form.csrf_token())],
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.summary());
    assert!(refused.text().contains("公開する下書きがありません"));
    // An unknown revision.
    assert_eq!(admin.get("/admin/settings/history/99").await.status, 404);

    // An operator may look but not change.
    let (operator, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "desk@daiwa.example.jp",
        "operator",
    )
    .await;
    let page = operator.get("/admin/settings").await;
    assert_eq!(page.status, 200);
    let fields = with(
        with(form_fields(&page.body), "password__min_length", "12"),
        "csrf_token",
        &page.csrf_token(),
    );
    assert_eq!(submit_settings(&operator, &fields).await.status, 403);
    let drafts = count(
        &app.db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM tenant_drafts",
        &[],
    )
    .await;
    assert_eq!(drafts, 0);
    assert!(audit_rows(&app, "settings_draft_saved").await.is_empty());
}

async fn the_api_edits_reviews_publishes_and_restores(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A member who holds a passkey only.
    let letter = add_some_member(&app.db, "daiwakenpo");
    let b = Browser::new(&app, DAIWA_HOST);
    walk_first_login(&b, &letter, &crate::browser_like::fresh_user_id(), TEN).await;
    let (_admin, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "rules@daiwa.example.jp",
        "admin",
    )
    .await;
    let token = api_token(&app.db, "daiwakenpo", "rules@daiwa.example.jp", None);
    let call = |method: &'static str, path: &'static str, body: Option<Value>| {
        let token = token.clone();
        let app = &app;
        async move { api(app, DAIWA_HOST, method, path, Some(&token), body).await }
    };

    let (status, _, draft) = call("GET", "/settings/draft", None).await;
    assert_eq!(status, 200, "{draft}");
    assert_eq!(draft["saved"], false);
    assert_eq!(draft["settings"]["password"]["min_length"], 8);

    // Wrong types and unknown fields: per-field problems, nothing saved.
    let (status, ct, problem) = call(
        "PUT",
        "/settings/draft",
        Some(json!({"edits": {"password.min_length": "12", "nope": 1}})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(ct, "application/problem+json");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"password.min_length"), "{problem}");
    assert!(fields.contains(&"settings"), "{problem}");
    let (status, _, problem) = call(
        "PUT",
        "/settings/draft",
        Some(json!({"edits": {"password.min_length": 2}})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        problem["errors"][0]["detail"],
        "4〜128の数字で入力してください。"
    );

    // Dropping passkeys strands the member who holds only a passkey.
    let (status, _, draft) = call(
        "PUT",
        "/settings/draft",
        Some(json!({"edits": {"mfa.methods": ["totp"], "mfa.required": false}})),
    )
    .await;
    assert_eq!(status, 200, "{draft}");
    let impact = &draft["review"]["impact"];
    let stranded = impact
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["code"] == "only_removed_method")
        .unwrap_or_else(|| panic!("{draft}"));
    assert_eq!(
        stranded["text"],
        "この方式だけを使っている会員 1 人は別の方式の設定が必要になります。"
    );
    let warnings: Vec<&str> = draft["review"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["code"].as_str().unwrap())
        .collect();
    assert!(warnings.contains(&"mfa_optional"), "{draft}");
    assert!(warnings.contains(&"reset_by_email"), "{draft}");

    // An operator's token may read but not change.
    let op_token = api_token(
        &app.db,
        "daiwakenpo",
        "rules@daiwa.example.jp",
        Some("operator"),
    );
    let (status, _, _) = api(
        &app,
        DAIWA_HOST,
        "POST",
        "/settings/publish",
        Some(&op_token),
        None,
    )
    .await;
    assert_eq!(status, 403);

    let (status, _, published) = call("POST", "/settings/publish", None).await;
    assert_eq!(status, 200, "{published}");
    assert_eq!(published["revision"], 2);
    let (status, _, again) = call("POST", "/settings/publish", None).await;
    assert_eq!(status, 409, "{again}");
    let (status, _, list) = call("GET", "/settings/revisions", None).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["number"], 2);
    let changed: Vec<&str> = list[0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["mfa.methods", "mfa.required"]);
    let (status, _, restored) = call("POST", "/settings/revisions/1/restore", None).await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["revision"], 3);
    let (status, _, _) = call("POST", "/settings/revisions/1/restore", None).await;
    assert_eq!(status, 409, "already live");
    let (status, _, _) = call("POST", "/settings/revisions/42/restore", None).await;
    assert_eq!(status, 404);
}

/// 「設定」 shows each first-login screen with its number (「表示しない」 for those left out),
/// takes a new order from the numbers chosen, refuses two screens at one number, and the
/// review says what changes.
async fn the_first_login_order_is_chosen_by_number_on_the_form(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (admin, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "order@daiwa.example.jp",
        "admin",
    )
    .await;
    let form = admin.get("/admin/settings").await;
    let text = form.text();
    assert!(text.contains("初回ログインの画面と順番"), "{text}");
    assert!(text.contains("「生年月日の確認」の順番"), "{text}");
    let fields = form_fields(&form.body);
    let position = |fields: &[(String, String)], step: &str| {
        fields
            .iter()
            .find(|(k, _)| k == &format!("first_login__steps-{step}"))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no select for {step}"))
    };
    assert_eq!(position(&fields, "birth_date"), "1");
    assert_eq!(position(&fields, "user_id+method"), "3");
    assert_eq!(position(&fields, "method"), "", "left out: 表示しない");

    // Two screens at one number: refused next to the field, nothing saved.
    let token = form.csrf_token();
    let clash = with(fields.clone(), "first_login__steps-email", "2");
    let clash = with(clash, "csrf_token", &token);
    let refused = submit_settings(&admin, &clash).await;
    assert_eq!(refused.status, 400, "{}", refused.summary());
    assert!(
        refused.text().contains("同じ順番が2つあります"),
        "{}",
        refused.summary()
    );
    // The kanekakenpo order: the user ID left out, the method on its own screen.
    let mut order = fields;
    for (step, n) in [
        ("birth_date", "1"),
        ("terms", "2"),
        ("email", "3"),
        ("method", "4"),
        ("password", "5"),
        ("user_id+method", ""),
    ] {
        order = with(order, &format!("first_login__steps-{step}"), n);
    }
    let order = with(order, "csrf_token", &token);
    let saved = submit_settings(&admin, &order).await;
    assert!(
        saved.is_see_other("/admin/settings/review?done=saved"),
        "{}",
        saved.summary()
    );
    let review = admin.get("/admin/settings/review?done=saved").await;
    assert!(
        review.text().contains(
            "「生年月日の確認」→「利用規約への同意」→「メールアドレスの確認」→「認証方式の選択」→「パスワードの変更」"
        ),
        "{}",
        review.summary()
    );
}
