//! What a society's console may see, print and upload, and in which order the server checks:
//!
//! - the operator owns a tenant's mail set-up (`mail.domain`, `mail.smtp_url`,
//!   `mail.dkim_selector`) and its retention (`retention.*`): a society admin never sees
//!   them, through the API or the console, and neither publishing a draft started before the
//!   operator's change nor restoring an old revision puts the old values back;
//! - the letters of a batch and the credentials CSV of a roster import are handed out once,
//!   to one of several requests arriving together, to admins only (operators cannot print
//!   letters), and the sweeper removes them with their secrets once they lapse;
//! - an upload is refused for want of a console session or of a good CSRF token (the first
//!   part of the form, as the console's forms send it) before the server reads the rest of
//!   its body.

use std::time::Duration;

use reqwest::cookie::CookieStore;
use serde_json::{json, Value};

use crate::admin::{api, api_token, signed_in_admin};
use crate::browser_like::{Browser, Reply, DAIWA_HOST, USER_AGENT};
use crate::db::{count, exec, now_unix, Arg};
use crate::harness::{eventually, on_both_backends, stderr, stdout, Backend, TestApp, TestDb};

const BOSS: &str = "boss@daiwa.example.jp";
const DESK: &str = "desk@daiwa.example.jp";
const NEW_CONTACT: &str = "新しい連絡先 03-0000-0000";

// The operator's mail set-up and retention of daiwakenpo.
const OPS_DOMAIN: &str = "mail.daiwa-ops.example.jp";
const OPS_SMTP_URL: &str = "smtp://127.0.0.1:2525";
const OPS_DKIM_SELECTOR: &str = "ops2026";
const OPS_AUDIT_DAYS: i64 = 400;

/// The fields (and field prefixes) only the operator sets.
const OPERATOR_FIELDS: [&str; 4] = [
    "mail.domain",
    "mail.smtp_url",
    "mail.dkim_selector",
    "retention.",
];

// --- the operator's settings ------------------------------------------------------------

/// `portal tenant export daiwakenpo`, parsed.
fn exported(db: &TestDb) -> toml::Table {
    let out = db.run(&["tenant", "export", "daiwakenpo"]);
    assert!(out.status.success(), "tenant export: {}", stderr(&out));
    let text = stdout(&out);
    toml::from_str(&text).unwrap_or_else(|e| panic!("the export is no TOML: {e}\n{text}"))
}

/// The value at a dotted `path` (`mail.domain`) of a tenant file.
fn at<'a>(file: &'a toml::Table, path: &str) -> Option<&'a toml::Value> {
    let mut parts = path.split('.');
    let mut value = file.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

fn text_at<'a>(file: &'a toml::Table, path: &str) -> Option<&'a str> {
    at(file, path).and_then(toml::Value::as_str)
}

/// The section `name` of a tenant file, made if the file has none.
fn section<'a>(file: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
    if !file.contains_key(name) {
        file.insert(name.to_owned(), toml::Value::Table(toml::Table::new()));
    }
    file.get_mut(name)
        .and_then(toml::Value::as_table_mut)
        .unwrap_or_else(|| panic!("[{name}] is not a section"))
}

/// The operator moves daiwakenpo's mail to their own domain, SMTP server and DKIM selector
/// and shortens its audit retention: export, edit, `portal tenant apply -`.
async fn operator_moves_mail_and_retention(app: &TestApp) {
    let mut file = exported(&app.db);
    let mail = section(&mut file, "mail");
    mail.insert("domain".into(), toml::Value::String(OPS_DOMAIN.into()));
    mail.insert("smtp_url".into(), toml::Value::String(OPS_SMTP_URL.into()));
    mail.insert(
        "dkim_selector".into(),
        toml::Value::String(OPS_DKIM_SELECTOR.into()),
    );
    section(&mut file, "retention")
        .insert("audit_days".into(), toml::Value::Integer(OPS_AUDIT_DAYS));
    let text = toml::to_string(&file).unwrap();
    let out = app.db.run_with_input(&["tenant", "apply", "-"], &text);
    assert!(out.status.success(), "tenant apply: {}", stderr(&out));
    assert!(
        stderr(&out).contains("tenant daiwakenpo: updated"),
        "{}",
        stderr(&out)
    );
    assert_keeps_operators_values("right after the apply", &exported(&app.db));
    // The running server reloads changed tenants every 100 ms (PORTAL_TENANT_REFRESH_MS).
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The tenant file still holds the operator's mail set-up and retention.
fn assert_keeps_operators_values(when: &str, file: &toml::Table) {
    let shown = toml::to_string(file).unwrap_or_default();
    assert_eq!(
        text_at(file, "mail.domain"),
        Some(OPS_DOMAIN),
        "{when}: mail.domain\n{shown}"
    );
    assert_eq!(
        text_at(file, "mail.smtp_url"),
        Some(OPS_SMTP_URL),
        "{when}: mail.smtp_url\n{shown}"
    );
    assert_eq!(
        text_at(file, "mail.dkim_selector"),
        Some(OPS_DKIM_SELECTOR),
        "{when}: mail.dkim_selector\n{shown}"
    );
    assert_eq!(
        at(file, "retention.audit_days").and_then(toml::Value::as_integer),
        Some(OPS_AUDIT_DAYS),
        "{when}: retention.audit_days\n{shown}"
    );
}

/// A request to the admin API with a bearer token: the status and the raw text.
async fn api_text(app: &TestApp, method: &str, path: &str, token: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .resolve(DAIWA_HOST, app.member)
        .build()
        .unwrap();
    let url = format!(
        "http://{DAIWA_HOST}:{}/admin/api/v1{path}",
        app.member.port()
    );
    let req = match method {
        "GET" => client.get(url),
        "DELETE" => client.delete(url),
        _ => client.post(url),
    };
    let resp = req.bearer_auth(token).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn parse(what: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
}

/// `text` (an API answer, or a console page as a reader sees it) shows none of the
/// operator's values.
fn assert_shows_no_operator_value(what: &str, text: &str) {
    for value in ["smtp://", OPS_DKIM_SELECTOR, "daiwa-ops"] {
        assert!(!text.contains(value), "{what} shows {value:?}:\n{text}");
    }
}

/// A list of changes (`[{field, before, after}]`) names no operator field.
fn assert_changes_name_no_operator_field(what: &str, changes: &Value) {
    for change in changes.as_array().into_iter().flatten() {
        let field = change["field"].as_str().unwrap_or_default();
        assert!(
            !OPERATOR_FIELDS.iter().any(|f| field.starts_with(f)),
            "{what} names {field}: {changes}"
        );
    }
}

/// The settings of a draft answer hold no retention and no operator mail field.
fn assert_draft_hides_operator_fields(what: &str, draft: &Value) {
    let settings = &draft["settings"];
    assert!(settings.is_object(), "{what}: no settings: {draft}");
    assert!(
        settings.get("retention").is_none(),
        "{what} shows retention: {draft}"
    );
    for key in ["domain", "smtp_url", "dkim_selector"] {
        assert!(
            settings["mail"].get(key).is_none(),
            "{what} shows mail.{key}: {draft}"
        );
    }
    assert_changes_name_no_operator_field(what, &draft["review"]["changes"]);
}

/// GET /settings/draft and GET /settings/revisions with `token` show nothing the operator
/// owns.
async fn assert_api_hides_operator_settings(app: &TestApp, who: &str, token: &str) {
    let (status, text) = api_text(app, "GET", "/settings/draft", token).await;
    let what = format!("GET /settings/draft ({who})");
    assert_eq!(status, 200, "{what}: {text}");
    assert_shows_no_operator_value(&what, &text);
    assert_draft_hides_operator_fields(&what, &parse(&what, &text));

    let (status, text) = api_text(app, "GET", "/settings/revisions", token).await;
    let what = format!("GET /settings/revisions ({who})");
    assert_eq!(status, 200, "{what}: {text}");
    assert_shows_no_operator_value(&what, &text);
    let list = parse(&what, &text);
    let revisions = list
        .as_array()
        .unwrap_or_else(|| panic!("{what}: not a list: {text}"));
    assert!(!revisions.is_empty(), "{what}: {text}");
    for revision in revisions {
        let what = format!("{what}, revision {}", revision["number"]);
        assert_changes_name_no_operator_field(&what, &revision["changes"]);
    }
}

on_both_backends!(
    publishing_a_stale_draft_keeps_the_operators_mail_and_retention,
    restoring_an_old_revision_keeps_the_operators_mail_and_retention,
    operator_owned_settings_are_never_shown_to_a_society,
);

async fn publishing_a_stale_draft_keeps_the_operators_mail_and_retention(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_boss, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", BOSS, "admin").await;
    let token = api_token(&app.db, "daiwakenpo", BOSS, None);
    // The society starts a draft …
    let (status, _, draft) = api(
        &app,
        DAIWA_HOST,
        "PUT",
        "/settings/draft",
        Some(&token),
        Some(json!({"edits": {"contact": NEW_CONTACT}})),
    )
    .await;
    assert_eq!(status, 200, "{draft}");
    // … the operator moves the mail and shortens the retention …
    operator_moves_mail_and_retention(&app).await;
    // … and the society publishes its draft: its own change only.
    let (status, _, published) = api(
        &app,
        DAIWA_HOST,
        "POST",
        "/settings/publish",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{published}");
    let file = exported(&app.db);
    assert_eq!(text_at(&file, "contact"), Some(NEW_CONTACT));
    assert_keeps_operators_values("after the society published", &file);
}

async fn restoring_an_old_revision_keeps_the_operators_mail_and_retention(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_boss, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", BOSS, "admin").await;
    let token = api_token(&app.db, "daiwakenpo", BOSS, None);
    let seed = exported(&app.db);
    let seed_contact = text_at(&seed, "contact").unwrap().to_owned();
    assert_ne!(seed_contact, NEW_CONTACT);
    // The society publishes one change.
    let (status, _, draft) = api(
        &app,
        DAIWA_HOST,
        "PUT",
        "/settings/draft",
        Some(&token),
        Some(json!({"edits": {"contact": NEW_CONTACT}})),
    )
    .await;
    assert_eq!(status, 200, "{draft}");
    let (status, _, published) = api(
        &app,
        DAIWA_HOST,
        "POST",
        "/settings/publish",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{published}");
    // The operator changes the mail and the retention afterwards.
    operator_moves_mail_and_retention(&app).await;
    // The society goes back to its first revision.
    let (status, _, list) = api(
        &app,
        DAIWA_HOST,
        "GET",
        "/settings/revisions",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let earliest = list
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .filter_map(|r| r["number"].as_i64())
        .min()
        .unwrap_or_else(|| panic!("no revision: {list}"));
    let (status, _, restored) = api(
        &app,
        DAIWA_HOST,
        "POST",
        &format!("/settings/revisions/{earliest}/restore"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "restoring revision {earliest}: {restored}");
    let file = exported(&app.db);
    assert_eq!(
        text_at(&file, "contact"),
        Some(seed_contact.as_str()),
        "the society's own field goes back"
    );
    assert_keeps_operators_values("after the society restored a revision", &file);
}

async fn operator_owned_settings_are_never_shown_to_a_society(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (boss, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", BOSS, "admin").await;
    let admin = api_token(&app.db, "daiwakenpo", BOSS, None);
    let operator = api_token(&app.db, "daiwakenpo", BOSS, Some("operator"));
    // A draft started before the operator's change: it differs from the live settings in
    // the operator's fields too, and still shows none of them.
    let (status, _, draft) = api(
        &app,
        DAIWA_HOST,
        "PUT",
        "/settings/draft",
        Some(&admin),
        Some(json!({"edits": {"contact": NEW_CONTACT}})),
    )
    .await;
    assert_eq!(status, 200, "{draft}");
    assert_draft_hides_operator_fields("PUT /settings/draft", &draft);
    operator_moves_mail_and_retention(&app).await;

    for (who, token) in [("admin token", &admin), ("operator token", &operator)] {
        assert_api_hides_operator_settings(&app, who, token).await;
    }
    // The console's settings pages neither.
    for path in [
        "/admin/settings",
        "/admin/settings/review",
        "/admin/settings/history",
    ] {
        let page = boss.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.summary());
        assert_shows_no_operator_value(path, &page.text());
    }

    // Without a draft the live settings are shown: the same.
    let (status, text) = api_text(&app, "DELETE", "/settings/draft", &admin).await;
    assert_eq!(status, 200, "{text}");
    assert_shows_no_operator_value("DELETE /settings/draft", &text);
    assert_draft_hides_operator_fields(
        "DELETE /settings/draft",
        &parse("DELETE /settings/draft", &text),
    );
    for (who, token) in [("admin token", &admin), ("operator token", &operator)] {
        assert_api_hides_operator_settings(&app, who, token).await;
    }
    let history = boss.get("/admin/settings/history").await;
    assert_eq!(history.status, 200, "{}", history.summary());
    assert_shows_no_operator_value("/admin/settings/history", &history.text());
}

// --- letters and credentials, once ---------------------------------------------------------

/// 「会員登録」 in the console by `b`: the credentials page.
async fn register_member(
    b: &Browser,
    name: &str,
    kana: &str,
    email: &str,
    card_number: &str,
) -> Reply {
    let created = b
        .fill(
            "/admin/members/new",
            &[
                ("display_name", name),
                ("name_kana", kana),
                ("birth_date", "1985-06-15"),
                ("email", email),
                ("card_symbol", "12"),
                ("card_number", card_number),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.summary());
    created
}

/// The link of the credentials page to the letters' print view.
fn letter_url(credentials: &Reply) -> Option<String> {
    credentials
        .text()
        .split("href=\"/admin/letters/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(|batch| format!("/admin/letters/{batch}"))
}

/// The temporary password the credentials page shows.
fn temporary_password(credentials: &Reply) -> String {
    credentials
        .text()
        .split("id=\"temporary-password\"")
        .nth(1)
        .and_then(|s| s.split('>').nth(1))
        .and_then(|s| s.split('<').next())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("the temporary password is shown: {}", credentials.summary()))
}

/// boss registers a member: (the letters' print view, the temporary password).
async fn a_member_with_a_letter(boss: &Browser, tag: &str, card_number: &str) -> (String, String) {
    let created = register_member(
        boss,
        "大和 花子",
        "ダイワ ハナコ",
        &format!("hanako.{tag}@example.jp"),
        card_number,
    )
    .await;
    let url =
        letter_url(&created).unwrap_or_else(|| panic!("a letter link: {}", created.summary()));
    (url, temporary_password(&created))
}

/// 「一括登録」 of a roster of two, checked and committed; the import's path
/// (`/admin/import/<id>`).
async fn committed_import(admin: &Browser, tag: &str) -> String {
    let roster = format!(
        "氏名,生年月日,メールアドレス,記号,番号\r\n\
         一括 一郎,1980/4/1,ichiro.{tag}@example.jp,6001,1\r\n\
         一括 次郎,1982/5/6,jiro.{tag}@example.jp,6001,2\r\n"
    );
    let form = admin.get("/admin/import").await;
    assert_eq!(form.status, 200, "{}", form.summary());
    let report = admin
        .post_file(
            "/admin/import",
            &[("csrf_token", &form.csrf_token())],
            "file",
            "roster.csv",
            roster.as_bytes(),
        )
        .await;
    assert_eq!(report.status, 200, "{}", report.summary());
    let start = report
        .body
        .find("action=\"/admin/import/")
        .unwrap_or_else(|| panic!("no 取り込む form: {}", report.summary()));
    let rest = &report.body[start + "action=\"".len()..];
    let path = rest[..rest.find('"').unwrap()].to_owned();
    let done = admin
        .post(&path, &[("csrf_token", &report.csrf_token())])
        .await;
    assert_eq!(done.status, 303, "{}", done.summary());
    path
}

fn content_type(reply: &Reply) -> &str {
    reply
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn is_csv(reply: &Reply) -> bool {
    reply.status == 200 && content_type(reply).starts_with("text/csv")
}

fn statuses(replies: &[Reply]) -> Vec<u16> {
    replies.iter().map(|r| r.status).collect()
}

async fn letters_left(db: &TestDb) -> i64 {
    count(db, "SELECT CAST(COUNT(*) AS TEXT) FROM member_letters", &[]).await
}

async fn credentials_left(db: &TestDb) -> i64 {
    count(
        db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM member_imports WHERE credentials IS NOT NULL",
        &[],
    )
    .await
}

on_both_backends!(
    a_letter_batch_is_handed_out_once_and_only_to_its_issuer,
    two_concurrent_letter_downloads_get_one_copy,
    two_concurrent_credentials_downloads_get_one_csv,
    expired_letters_and_credentials_are_swept_with_their_secrets,
);

async fn a_letter_batch_is_handed_out_once_and_only_to_its_issuer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (boss, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", BOSS, "admin").await;
    let (desk, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", DESK, "operator").await;
    let (url, password) = a_member_with_a_letter(&boss, "once", "3456").await;

    // An operator may not print it, and trying spends nothing.
    let refused = desk.get(&url).await;
    assert_eq!(refused.status, 403, "{}", refused.summary());
    assert!(!refused.text().contains(&password), "{}", refused.summary());
    // The admin prints it once …
    let printed = boss.get(&url).await;
    assert_eq!(printed.status, 200, "{}", printed.summary());
    assert!(printed.text().contains(&password), "{}", printed.summary());
    // … and the second opening shows no password, only that the letters are gone.
    let again = boss.get(&url).await;
    assert_eq!(again.status, 200, "{}", again.summary());
    let text = again.text();
    assert!(
        !text.contains(&password),
        "the letter prints twice: {}",
        again.summary()
    );
    assert_eq!(
        again.body.matches("<article class=\"letter\"").count(),
        0,
        "{}",
        again.summary()
    );
    assert!(
        text.contains("すでに表示") || text.contains("有効期限"),
        "{}",
        again.summary()
    );

    // An operator prints the letters of the members they registered, once, and the
    // admin cannot open them from the address bar either.
    let own = register_member(
        &desk,
        "窓口 太郎",
        "マドグチ タロウ",
        "taro.desk@example.jp",
        "3457",
    )
    .await;
    let own_password = temporary_password(&own);
    assert!(!own_password.is_empty());
    let own_url = letter_url(&own).unwrap_or_else(|| panic!("a letter link: {}", own.summary()));
    let refused = boss.get(&own_url).await;
    assert_eq!(refused.status, 403, "{}", refused.summary());
    let printed = desk.get(&own_url).await;
    assert_eq!(printed.status, 200, "{}", printed.summary());
    assert!(
        printed.text().contains(&own_password),
        "{}",
        printed.summary()
    );
    let again = desk.get(&own_url).await;
    assert!(!again.text().contains(&own_password), "{}", again.summary());
}

async fn two_concurrent_letter_downloads_get_one_copy(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (boss, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", BOSS, "admin").await;
    let (url, password) = a_member_with_a_letter(&boss, "race", "3456").await;
    let replies = futures_util::future::join_all((0..8).map(|_| boss.get(&url))).await;
    assert!(
        replies.iter().all(|r| r.status < 500),
        "statuses {:?}",
        statuses(&replies)
    );
    let copies = replies
        .iter()
        .filter(|r| r.text().contains(&password))
        .count();
    assert_eq!(
        copies,
        1,
        "copies of the letter among 8 downloads (statuses {:?})",
        statuses(&replies)
    );
}

async fn two_concurrent_credentials_downloads_get_one_csv(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (boss, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", BOSS, "admin").await;
    let import = committed_import(&boss, "race").await;
    let csv_path = format!("{import}/credentials.csv");
    let replies = futures_util::future::join_all((0..8).map(|_| boss.get(&csv_path))).await;
    assert!(
        replies.iter().all(|r| r.status < 500),
        "statuses {:?}",
        statuses(&replies)
    );
    let csvs: Vec<&Reply> = replies.iter().filter(|r| is_csv(r)).collect();
    assert_eq!(
        csvs.len(),
        1,
        "CSVs among 8 downloads (statuses {:?})",
        statuses(&replies)
    );
    assert!(
        csvs[0].body.contains("ichiro.race@example.jp")
            && csvs[0].body.contains("jiro.race@example.jp"),
        "{}",
        csvs[0].body
    );
}

async fn expired_letters_and_credentials_are_swept_with_their_secrets(backend: Backend) {
    let app = TestApp::spawn_on(TestDb::fresh(backend).await, |cmd| {
        cmd.env("PORTAL_SWEEP_INTERVAL_MS", "200");
    });
    let (boss, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", BOSS, "admin").await;
    let (url, password) = a_member_with_a_letter(&boss, "sweep", "3456").await;
    let import = committed_import(&boss, "sweep").await;
    assert!(letters_left(&app.db).await >= 1);
    assert_eq!(credentials_left(&app.db).await, 1);

    // The letters lapsed; the credentials are good for an hour after the import.
    let now = now_unix();
    let letters = exec(
        &app.db,
        "UPDATE member_letters SET expires_at = $1",
        &[Arg::Int(now - 10)],
    )
    .await;
    assert!(letters >= 1);
    let imports = exec(
        &app.db,
        "UPDATE member_imports SET committed_at = $1 WHERE committed_at IS NOT NULL",
        &[Arg::Int(now - 7200)],
    )
    .await;
    assert_eq!(imports, 1);
    let swept = eventually(Duration::from_secs(10), || async {
        letters_left(&app.db).await == 0 && credentials_left(&app.db).await == 0
    })
    .await;
    assert!(
        swept,
        "{} letters and {} credentials CSVs left:\n{}",
        letters_left(&app.db).await,
        credentials_left(&app.db).await,
        app.log()
    );

    let csv = boss.get(&format!("{import}/credentials.csv")).await;
    assert!(
        !is_csv(&csv),
        "lapsed credentials downloaded: {}",
        csv.summary()
    );
    let letter = boss.get(&url).await;
    assert!(
        !letter.text().contains(&password),
        "a lapsed letter prints: {}",
        letter.summary()
    );
}

// --- uploads: session and token before the body ----------------------------------------

/// The boundary of the raw uploads.
const BOUNDARY: &str = "XyZ";

/// How long the server may take to refuse an upload whose body has not arrived.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The console's upload routes: the path, the file field of its form, the file's name, and
/// the length the request head promises (below the route's limit, far above what is sent).
const UPLOADS: [(&str, &str, &str, usize); 4] = [
    ("/admin/import", "file", "a.csv", 5_000_000),
    ("/admin/look", "logo", "logo.png", 500_000),
    ("/admin/services/new", "image", "icon.png", 500_000),
    (
        "/admin/bulk-reset/preview",
        "user_ids_file",
        "ids.csv",
        500_000,
    ),
];

/// The text parts `fields`, in order, then the head of the file part `file_field`: what
/// a browser has sent of an upload before the file's bytes.
fn first_parts(fields: &[(&str, &str)], file_field: &str, file_name: &str) -> String {
    let mut out = String::new();
    for (name, value) in fields {
        out.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    out.push_str(&format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{file_field}\"; \
         filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n"
    ));
    out
}

/// The head of the server's answer to a raw upload.
struct Answer {
    status: u16,
    head: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Sends a multipart POST to `path` whose head promises `content_length` bytes, then
/// `sent` and nothing more, keeping the connection open. The head of the answer, or None
/// when none came within [`ANSWER_WITHIN`].
async fn upload_raw(
    app: &TestApp,
    path: &str,
    cookie: Option<&str>,
    content_length: usize,
    sent: &str,
) -> Option<Answer> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.member).await.unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {DAIWA_HOST}\r\nUser-Agent: {USER_AGENT}\r\n{cookie}\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {content_length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(sent.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let answered = tokio::time::timeout(ANSWER_WITHIN, async {
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    if answered.is_err() {
        return None;
    }
    let head = String::from_utf8_lossy(&got).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Some(Answer { status, head })
}

/// [`upload_raw`] of an upload of which only `sent` ever arrives: the answer, which must
/// come while the body is incomplete.
async fn unfinished_upload(
    app: &TestApp,
    path: &str,
    cookie: Option<&str>,
    promised: usize,
    sent: &str,
    case: &str,
) -> Answer {
    assert!(sent.len() < promised, "{case}: the whole body is sent");
    upload_raw(app, path, cookie, promised, sent)
        .await
        .unwrap_or_else(|| {
            panic!("POST {path} ({case}): no answer within {ANSWER_WITHIN:?}, body incomplete")
        })
}

/// The `Cookie` header `b` sends to the console's `path`: the console session (a cookie of
/// `/admin`) and the CSRF cookie.
fn console_cookies(b: &Browser, path: &str) -> String {
    let url = reqwest::Url::parse(&b.url(path)).unwrap();
    let header = b
        .jar
        .cookies(&url)
        .and_then(|h| h.to_str().ok().map(str::to_owned))
        .unwrap_or_default();
    assert!(
        header.contains("portal_admin=") && header.contains("portal_csrf="),
        "the console's cookies: {header:?}"
    );
    header
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_without_a_session_is_refused_before_its_body_is_read() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (path, file_field, file_name, promised) in UPLOADS {
        let sent = first_parts(&[("csrf_token", "bogus")], file_field, file_name);
        let answer = unfinished_upload(&app, path, None, promised, &sent, "no session").await;
        let to_login = answer.status == 303
            && answer
                .header("location")
                .is_some_and(|l| l.contains("/admin/login"));
        assert!(
            answer.status == 403 || to_login,
            "POST {path} without a session:\n{}",
            answer.head
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_with_a_session_but_a_bad_token_is_refused_before_its_body_is_read() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (boss, _) = signed_in_admin(&app, DAIWA_HOST, "daiwakenpo", BOSS, "admin").await;
    let form = boss.get("/admin/import").await;
    assert_eq!(form.status, 200, "{}", form.summary());
    let token = form.csrf_token();
    let cookies = console_cookies(&boss, "/admin/import");

    // The same session and a good token first, with the whole body: the upload is read.
    let roster = "氏名,生年月日,メールアドレス,記号,番号\r\n\
                  生 一郎,1980/4/1,raw.ichiro@example.jp,8001,1\r\n";
    let whole = format!(
        "{}{roster}\r\n--{BOUNDARY}--\r\n",
        first_parts(&[("csrf_token", &token)], "file", "a.csv")
    );
    let answer = upload_raw(&app, "/admin/import", Some(&cookies), whole.len(), &whole)
        .await
        .expect("an answer to a whole upload");
    assert_eq!(answer.status, 200, "a whole upload:\n{}", answer.head);

    for (path, file_field, file_name, promised) in UPLOADS {
        // A wrong token.
        let sent = first_parts(&[("csrf_token", "bogus")], file_field, file_name);
        let answer =
            unfinished_upload(&app, path, Some(&cookies), promised, &sent, "bad token").await;
        assert_eq!(
            answer.status, 403,
            "POST {path}, bad token:\n{}",
            answer.head
        );
        // The good token, but not as the first part.
        let sent = first_parts(
            &[("target", "all"), ("csrf_token", &token)],
            file_field,
            file_name,
        );
        let answer =
            unfinished_upload(&app, path, Some(&cookies), promised, &sent, "token second").await;
        assert_eq!(
            answer.status, 403,
            "POST {path}, token second:\n{}",
            answer.head
        );
    }
}
