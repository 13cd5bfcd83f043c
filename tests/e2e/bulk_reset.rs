//! 「一括パスワードリセット」 (journey 15): 100 members registered from a roster get the
//! password `{記号}{番号}{生年月日:YYYYMMDD}`; the preview counts them, masks the sample and
//! lists the member without a card, who stays unchanged; one member who had finished the
//! first login signs in with that password under the same user ID, proves the birth date,
//! passes the passkey and must choose a new password. One bulk event, one per member.

use crate::admin::signed_in_admin;
use crate::browser_like::{
    add_some_member, first_login_step, login_ok, walk_first_login, Browser, Letter, DAIWA_HOST,
};
use crate::db::{count, value, Arg};
use crate::harness::{on_both_backends, Backend, TestApp};

/// Registers 100 members from a roster through 「一括登録」; returns the credentials CSV.
async fn import_hundred(admin: &Browser) -> String {
    let mut roster = String::from("氏名,生年月日,メールアドレス,記号,番号\r\n");
    for i in 1..=100 {
        roster.push_str(&format!(
            "復帰 会員{i:03},1980/{}/{},back{i:03}@example.jp,5001,{}\r\n",
            1 + i % 12,
            1 + i % 28,
            700 + i
        ));
    }
    let form = admin.get("/admin/import").await;
    let report = admin
        .post_file(
            "/admin/import",
            &[("csrf_token", &form.csrf_token())],
            "file",
            "back.csv",
            roster.as_bytes(),
        )
        .await;
    let at = report.body.find("action=\"/admin/import/").unwrap();
    let rest = &report.body[at + 8..];
    let path = rest[..rest.find('"').unwrap()].to_owned();
    let done = admin
        .post(&path, &[("csrf_token", &report.csrf_token())])
        .await;
    assert_eq!(done.status, 303, "{}", done.summary());
    admin.get(&format!("{path}/credentials.csv")).await.body
}

const RULE: &str = "{記号}{番号}{生年月日:YYYYMMDD}";

on_both_backends!(a_hundred_members_are_reset_by_their_card_and_birth_date);

async fn a_hundred_members_are_reset_by_their_card_and_birth_date(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (admin, _) = signed_in_admin(
        &app,
        DAIWA_HOST,
        "daiwakenpo",
        "desk@daiwa.example.jp",
        "admin",
    )
    .await;
    let csv = import_hundred(&admin).await;
    let first: Vec<&str> = csv.split("\r\n").nth(1).unwrap().split(',').collect();
    // 復帰 会員001: 1980-02-02, card 5001 / 701.
    assert_eq!(first[2], "1980-02-02");
    let letter = Letter {
        name: first[0].to_owned(),
        birth_date: first[2].to_owned(),
        email: first[3].to_owned(),
        user_id: first[6].to_owned(),
        password: first[7].to_owned(),
    };
    let member = Browser::new(&app, DAIWA_HOST);
    let chosen = crate::browser_like::fresh_user_id();
    walk_first_login(
        &member,
        &letter,
        &chosen,
        &crate::browser_like::fresh_password(),
    )
    .await;
    // A member without an insurance card on record.
    let cardless = add_some_member(&app.db, "daiwakenpo");
    let hash_of = |user_id: String| {
        let db = &app.db;
        async move {
            value(
                db,
                "SELECT password_hash FROM members WHERE user_id = $1",
                &[Arg::Text(&user_id)],
            )
            .await
            .unwrap()
        }
    };
    let cardless_hash = hash_of(cardless.user_id.clone()).await;

    // A rule that names no member data is refused next to its field.
    let page = admin.get("/admin/bulk-reset").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(RULE), "{}", page.summary());
    let bad = admin
        .post_file(
            "/admin/bulk-reset/preview",
            &[
                ("target", "all"),
                ("rule", "{氏名}"),
                ("csrf_token", &page.csrf_token()),
            ],
            "user_ids_file",
            "",
            b"",
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.summary());
    assert!(bad.body.contains("id=\"rule-error\" role=\"alert\""));

    // The preview: 101 chosen, 100 reached, digits masked, the cardless member listed.
    let fields = [
        ("target", "all"),
        ("rule", RULE),
        ("csrf_token", &page.csrf_token()),
    ];
    let preview = admin
        .post_file(
            "/admin/bulk-reset/preview",
            &fields,
            "user_ids_file",
            "",
            b"",
        )
        .await;
    assert_eq!(preview.status, 200, "{}", preview.summary());
    let text = preview.text();
    assert!(text.contains("選んだ101人のうち100人"), "{text}");
    assert!(text.contains("●●●●●●●●●●●●●●●"), "{text}");
    assert!(!text.contains("501701"), "the sample shows digits: {text}");
    assert!(text.contains(&cardless.user_id));
    assert!(text.contains("保険証の記号が登録されていません"));
    assert_eq!(
        count(
            &app.db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE event = 'bulk_password_reset'",
            &[]
        )
        .await,
        0,
        "the preview changed something"
    );

    // An uploaded list of user IDs (Shift_JIS, with a header) narrows it to those members.
    let list = format!("ユーザID\r\n{}\r\n{}\r\n", chosen, cardless.user_id);
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(&list);
    let listed = admin
        .post_file(
            "/admin/bulk-reset/preview",
            &[
                ("target", "all"),
                ("rule", RULE),
                ("csrf_token", &page.csrf_token()),
            ],
            "user_ids_file",
            "ids.csv",
            &sjis,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.summary());
    assert!(
        listed.text().contains("選んだ2人のうち1人"),
        "{}",
        listed.summary()
    );
    assert!(listed
        .body
        .contains(&format!("value=\"{chosen}\n{}\"", cardless.user_id)));

    let done = admin.post("/admin/bulk-reset", &fields).await;
    assert_eq!(done.status, 200, "{}", done.summary());
    assert!(done.text().contains("100人のパスワードをリセットしました"));
    assert_eq!(hash_of(cardless.user_id.clone()).await, cardless_hash);
    let events = |event: &'static str| {
        let db = &app.db;
        async move {
            count(
                db,
                "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE event = $1",
                &[Arg::Text(event)],
            )
            .await
        }
    };
    assert_eq!(events("bulk_password_reset").await, 1);
    assert_eq!(events("member_password_reset_by_rule").await, 100);

    // The returning member: same user ID, the rule's password, then 生年月日, the passkey
    // and a new password.
    let returning = member.private_window(&app);
    let next = login_ok(&returning, &chosen, "500170119800202").await;
    assert!(next.is_see_other("/login/birth-date"), "{}", next.summary());
    let next = first_login_step(
        &returning,
        "/login/birth-date",
        &[("birth_date", "1980-02-02")],
    )
    .await;
    assert!(next.is_see_other("/login/factor"), "{}", next.summary());
    let next = returning.get("/login/factor").await;
    assert!(next.is_see_other("/login/passkey"), "{}", next.summary());
    let next = crate::passkeys::sign_in(&returning).await;
    assert!(next.is_see_other("/login/password"), "{}", next.summary());
    let new = crate::browser_like::fresh_password();
    let next = first_login_step(
        &returning,
        "/login/password",
        &[("password", &new), ("password_confirm", &new)],
    )
    .await;
    assert!(next.is_see_other("/"), "{}", next.summary());
    // The rule's password is spent: the new one signs in.
    let again = Browser::new(&app, DAIWA_HOST);
    assert!(login_ok(&again, &chosen, &new)
        .await
        .is_see_other("/login/factor"));
}
