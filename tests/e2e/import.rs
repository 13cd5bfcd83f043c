//! 「一括登録」 with the real roster files in `tests/fixtures/roster/`: the dry run names every
//! bad row (a duplicate pair, a bad date, a bad address, an existing member) and changes
//! nothing; 1,000 rows in UTF-8 with a BOM and the same in Shift_JIS with CRLF (和暦 dates
//! among them) read the same; 「取り込む」 registers all or none; the letters and the
//! credentials CSV (once) let an imported member sign in.

use crate::admin::signed_in_admin;
use crate::browser_like::{login_ok, Browser, Reply, DAIWA_HOST};
use crate::db::count;
use crate::harness::{on_both_backends, repo_root, Backend, TestApp};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("tests/fixtures/roster").join(name)).unwrap()
}

async fn members(app: &TestApp) -> i64 {
    count(
        &app.db,
        "SELECT CAST(COUNT(*) AS TEXT) FROM members m JOIN tenants t ON t.id = m.tenant_id \
         WHERE t.slug = 'daiwakenpo'",
        &[],
    )
    .await
}

async fn upload(admin: &Browser, name: &str, bytes: &[u8]) -> Reply {
    let form = admin.get("/admin/import").await;
    assert_eq!(form.status, 200, "{}", form.summary());
    admin
        .post_file(
            "/admin/import",
            &[("csrf_token", &form.csrf_token())],
            "file",
            name,
            bytes,
        )
        .await
}

/// The `action` of the report's 「取り込む」 form.
fn commit_path(report: &Reply) -> String {
    let at = report
        .body
        .find("action=\"/admin/import/")
        .unwrap_or_else(|| panic!("no 取り込む form: {}", report.summary()));
    let rest = &report.body[at + "action=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// The report's table rows as (line, column, reason).
fn problem_rows(report: &Reply) -> Vec<(String, String, String)> {
    let Some(body) = report.body.split("<tbody>").nth(1) else {
        return Vec::new();
    };
    let body = &body[..body.find("</tbody>").unwrap()];
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            let cells: Vec<String> = row
                .split("<td")
                .skip(1)
                .map(|c| {
                    let c = &c[c.find('>').unwrap() + 1..];
                    crate::browser_like::unescape_html(&c[..c.find("</td>").unwrap()])
                })
                .collect();
            (cells[0].clone(), cells[1].clone(), cells[2].clone())
        })
        .collect()
}

on_both_backends!(a_roster_is_checked_then_imported_all_or_none);

async fn a_roster_is_checked_then_imported_all_or_none(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (admin, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "roster@daiwa.example.jp",
        "admin",
    )
    .await;
    // The member the problem file lists again.
    let new = admin
        .fill(
            "/admin/members/new",
            &[
                ("display_name", "既存 会員"),
                ("name_kana", "キソン カイイン"),
                ("birth_date", "1975-05-05"),
                ("email", "existing.member@example.jp"),
                ("card_symbol", "9999"),
                ("card_number", "1"),
            ],
        )
        .await;
    assert!(new.status == 200 || new.status == 303, "{}", new.summary());
    let before = members(&app).await;

    // The dry run names each bad row, offers no 「取り込む」 and changes nothing.
    let report = upload(
        &admin,
        "roster-problems.csv",
        &fixture("roster-problems.csv"),
    )
    .await;
    assert_eq!(report.status, 200, "{}", report.summary());
    let rows = problem_rows(&report);
    let expect = [
        ("8", "番号", "同じ方がファイルの中に2回以上あります"),
        ("9", "生年月日", "生年月日を正しく入力してください"),
        ("10", "メールアドレス", "メールアドレス"),
        ("11", "番号", "すでに会員として登録されています"),
    ];
    assert_eq!(rows.len(), expect.len(), "{rows:?}");
    for ((line, column, reason), (l, c, r)) in rows.iter().zip(expect) {
        assert_eq!((line.as_str(), column.as_str()), (l, c), "{rows:?}");
        assert!(reason.contains(r), "{line}: {reason}");
    }
    assert!(!report.body.contains("action=\"/admin/import/"));
    assert_eq!(members(&app).await, before);

    // The same 1,000 people in Shift_JIS with CRLF: all good, waiting for 「取り込む」.
    let sjis = upload(&admin, "名簿.csv", &fixture("roster-1000-sjis-crlf.csv")).await;
    let text = sjis.text();
    assert!(text.contains("Shift_JIS"), "{}", sjis.summary());
    assert!(text.contains("1000件"), "{}", sjis.summary());
    assert!(problem_rows(&sjis).is_empty());
    let sjis_commit = commit_path(&sjis);
    assert_eq!(members(&app).await, before, "a dry run registered someone");

    // UTF-8 with a BOM: checked, then imported.
    let report = upload(&admin, "roster.csv", &fixture("roster-1000-utf8-bom.csv")).await;
    assert!(
        report.text().contains("UTF-8 (BOM)"),
        "{}",
        report.summary()
    );
    assert!(report.text().contains("1000人を会員として登録し"));
    let path = commit_path(&report);
    let done = admin
        .post(&path, &[("csrf_token", &report.csrf_token())])
        .await;
    assert!(done.status == 303, "{}", done.summary());
    assert!(done.location.ends_with("/done"), "{}", done.summary());
    assert_eq!(members(&app).await, before + 1000);
    // Twice is refused.
    let again = admin
        .post(&path, &[("csrf_token", &report.csrf_token())])
        .await;
    assert_eq!(again.status, 409, "{}", again.summary());
    assert_eq!(members(&app).await, before + 1000);

    // The Shift_JIS import waiting since before now holds members: all or none → none.
    let refused = admin
        .post(&sjis_commit, &[("csrf_token", &report.csrf_token())])
        .await;
    assert_eq!(refused.status, 409, "{}", refused.summary());
    assert!(refused.text().contains("何も登録していません"));
    assert_eq!(members(&app).await, before + 1000);
    // Read again, every row is a member already.
    let again = upload(&admin, "名簿.csv", &fixture("roster-1000-sjis-crlf.csv")).await;
    let rows = problem_rows(&again);
    assert_eq!(rows.len(), 1000);
    assert!(rows.iter().all(|r| r.2.contains("すでに会員")));

    // The done page: letters to print and the credentials CSV, once.
    let page = admin.follow(done).await;
    assert!(
        page.text().contains("1000人を会員として登録しました"),
        "{}",
        page.summary()
    );
    let letters_path = format!("{path}/letters");
    assert!(
        page.body.contains(&format!("href=\"{letters_path}\"")),
        "{}",
        page.summary()
    );
    let letters = admin.get(&letters_path).await;
    assert_eq!(letters.status, 200);
    assert_eq!(letters.body.matches("class=\"letter\"").count(), 1000);
    // Once: the second opening prints nothing.
    let again = admin.get(&letters_path).await;
    assert_eq!(again.body.matches("class=\"letter\"").count(), 0);
    assert!(
        again.text().contains("表示できるのは1回だけ"),
        "{}",
        again.summary()
    );
    let csv_path = format!("{path}/credentials.csv");
    let csv = admin.get(&csv_path).await;
    assert_eq!(csv.status, 200, "{}", csv.summary());
    assert!(csv.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(csv.body.starts_with('\u{feff}'), "no BOM for Excel");
    let lines: Vec<&str> = csv
        .body
        .trim_start_matches('\u{feff}')
        .split("\r\n")
        .collect();
    assert_eq!(
        lines[0],
        "氏名,氏名カナ,生年月日,メールアドレス,記号,番号,ユーザID,仮パスワード,ログインページ"
    );
    assert_eq!(lines.iter().filter(|l| !l.is_empty()).count(), 1001);
    assert_eq!(
        admin.get(&csv_path).await.status,
        409,
        "the CSV is handed out once"
    );

    // The first row (小林 和子, S-less date 1971-05-04) signs in with her letter's credentials.
    let first: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(first[0], "小林　和子");
    assert_eq!(first[2], "1971-05-04");
    let user_id = first[6];
    let password = first[7];
    assert!(letters.body.contains(user_id));
    assert!(
        letters.body.contains(password),
        "the letters print the password"
    );
    let member = Browser::new(&app, DAIWA_HOST);
    let next = login_ok(&member, user_id, password).await;
    assert!(next.is_see_other("/login/birth-date"), "{}", next.summary());
    let next = member
        .fill("/login/birth-date", &[("birth_date", "1971-05-04")])
        .await;
    assert!(next.is_see_other("/login/next"), "{}", next.summary());
    // A 和暦 row reads as its Western date: 田中 翔太, S52.2.5.
    let tanaka: Vec<&str> = lines[2].split(',').collect();
    assert_eq!(tanaka[2], "1977-02-05");
}

on_both_backends!(bad_uploads_are_refused);

async fn bad_uploads_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (admin, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "roster@daiwa.example.jp",
        "admin",
    )
    .await;
    let before = members(&app).await;
    // A picture renamed .csv.
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\xff\xfe\x00";
    let reply = upload(&admin, "roster.csv", png).await;
    assert_eq!(reply.status, 400, "{}", reply.summary());
    assert!(reply.body.contains("id=\"file-error\" role=\"alert\""));
    // No header row of ours.
    let reply = upload(&admin, "x.csv", "a,b,c\n1,2,3\n".as_bytes()).await;
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains("見出しが必要です"));
    // Too large: refused before any handler reads it.
    let big = vec![b'a'; 6 * 1024 * 1024];
    assert_eq!(upload(&admin, "big.csv", &big).await.status, 413);
    // Without the form's token.
    let reply = admin
        .post_file(
            "/admin/import",
            &[],
            "file",
            "r.csv",
            &fixture("roster-problems.csv"),
        )
        .await;
    assert_eq!(reply.status, 403);
    // A name a spreadsheet would run is imported as text and quoted in the CSV.
    let roster =
        "氏名,生年月日,メールアドレス,記号,番号\r\n=1+2,1980/4/1,formula@example.jp,2001,7\r\n";
    let report = upload(&admin, "f.csv", roster.as_bytes()).await;
    let path = commit_path(&report);
    let done = admin
        .post(&path, &[("csrf_token", &report.csrf_token())])
        .await;
    assert_eq!(done.status, 303, "{}", done.summary());
    let csv = admin.get(&format!("{path}/credentials.csv")).await;
    assert!(csv.body.contains("\r\n'=1+2,"), "{}", csv.body);
    assert_eq!(members(&app).await, before + 1);
    // Another society's import id is nobody's here.
    let kaneka = Browser::new(&app, crate::browser_like::KANEKA_HOST);
    assert!(kaneka
        .get(&format!("{path}/done"))
        .await
        .is_see_other("/admin/login"));
}

on_both_backends!(the_api_imports_and_resets_in_bulk_like_the_console);

/// A raw request to the API with a bearer token.
async fn api_raw(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, String) {
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
        _ => client
            .post(url)
            .header("content-type", content_type)
            .body(body),
    };
    let resp = req.bearer_auth(token).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn the_api_imports_and_resets_in_bulk_like_the_console(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_admin, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "script@daiwa.example.jp",
        "admin",
    )
    .await;
    let token = crate::admin::api_token(&app.db, "daiwakenpo", "script@daiwa.example.jp", None);
    let operator = crate::admin::api_token(
        &app.db,
        "daiwakenpo",
        "script@daiwa.example.jp",
        Some("operator"),
    );
    let csv = "application/octet-stream";
    let (status, body) = api_raw(
        &app,
        "POST",
        "/members/import?file_name=p.csv",
        &token,
        csv,
        fixture("roster-problems.csv"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(report.get("import_id").is_none());
    let lines: Vec<u64> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [8, 9, 10]);
    let (status, _) = api_raw(
        &app,
        "POST",
        "/members/import",
        &operator,
        csv,
        fixture("roster-problems.csv"),
    )
    .await;
    assert_eq!(status, 403);

    let roster = "氏名,生年月日,メールアドレス,記号,番号\r\n表計 一郎,S50.1.2,ichiro@example.jp,7001,1\r\n表計 次郎,1976/3/4,jiro@example.jp,7001,2\r\n";
    let (status, body) = api_raw(
        &app,
        "POST",
        "/members/import",
        &token,
        csv,
        roster.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = report["import_id"].as_str().unwrap().to_owned();
    let before = members(&app).await;
    let commit = format!("/members/imports/{id}/commit");
    let (status, body) = api_raw(
        &app,
        "POST",
        &commit,
        &token,
        "application/json",
        Vec::new(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(members(&app).await, before + 2);
    let credentials = format!("/members/imports/{id}/credentials");
    let (status, body) = api_raw(&app, "GET", &credentials, &token, "", Vec::new()).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("表計 一郎,,1975-01-02,ichiro@example.jp,7001,1,"),
        "{body}"
    );
    let (status, _) = api_raw(&app, "GET", &credentials, &token, "", Vec::new()).await;
    assert_eq!(status, 409, "the credentials are handed out once");

    let rule = serde_json::json!({"target": "search", "query": "表計", "rule": "{記号}-{番号}-{生年月日:MMDD}"});
    let (status, body) = api_raw(
        &app,
        "POST",
        "/members/bulk-reset/preview",
        &token,
        "application/json",
        rule.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let preview: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(preview["reset"], 2);
    assert!(
        preview["sample"][0]
            .as_str()
            .unwrap()
            .starts_with("●●●●-●-●●●●"),
        "{body}"
    );
    let (status, body) = api_raw(
        &app,
        "POST",
        "/members/bulk-reset",
        &token,
        "application/json",
        rule.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let first = crate::db::value(
        &app.db,
        "SELECT user_id FROM members WHERE email = 'ichiro@example.jp'",
        &[],
    )
    .await
    .unwrap();
    let b = Browser::new(&app, DAIWA_HOST);
    let next = login_ok(&b, &first, "7001-1-0102").await;
    assert!(next.is_see_other("/login/birth-date"), "{}", next.summary());
}
