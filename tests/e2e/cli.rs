//! `portal tenant …`: onboarding files round-trip, and a broken one changes nothing.

use crate::harness::{on_both_backends, repo_root, stderr, stdout, Backend, TestDb, DAIWA, KANEKA};

on_both_backends!(
    export_and_apply_round_trip,
    broken_tenant_file_is_refused_naming_the_field,
    host_of_another_tenant_is_refused,
    new_tenant_is_onboarded_from_a_file,
);

/// A database with the seed tenants, as `portal serve` leaves it.
async fn seeded(backend: Backend) -> TestDb {
    let db = TestDb::fresh(backend).await;
    for slug in ["daiwakenpo", "kanekakenpo"] {
        let path = repo_root().join(format!("tenants/{slug}.toml"));
        let out = db.run(&["tenant", "apply", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("tenant {slug}: created")),
            "{}",
            stderr(&out)
        );
    }
    db
}

fn export(db: &TestDb, slug: &str) -> String {
    let out = db.run(&["tenant", "export", slug]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

async fn export_and_apply_round_trip(backend: Backend) {
    let db = seeded(backend).await;
    let list = stdout(&db.run(&["tenant", "list"]));
    assert!(
        list.contains("daiwakenpo") && list.contains(DAIWA),
        "{list}"
    );
    assert!(
        list.contains("kanekakenpo") && list.contains(KANEKA),
        "{list}"
    );

    for slug in ["daiwakenpo", "kanekakenpo"] {
        let first = export(&db, slug);
        // What export prints, apply takes back unchanged: from a pipe...
        let out = db.run_with_input(&["tenant", "apply", "/dev/stdin"], &first);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("tenant {slug}: unchanged")),
            "{}",
            stderr(&out)
        );
        assert_eq!(export(&db, slug), first);

        // ...and everything in the seed file survives the trip through the database.
        let seed =
            std::fs::read_to_string(repo_root().join(format!("tenants/{slug}.toml"))).unwrap();
        let seed = portal::tenant::TenantFile::parse(&seed).unwrap();
        let stored = portal::tenant::TenantFile::parse(&first).unwrap();
        assert_eq!(seed, stored);
    }

    // An edit is applied and exported.
    let edited = export(&db, "daiwakenpo").replace("min_length = 8", "min_length = 10");
    let out = db.run_with_input(&["tenant", "apply", "-"], &edited);
    assert!(
        stderr(&out).contains("tenant daiwakenpo: updated"),
        "{}",
        stderr(&out)
    );
    assert_eq!(export(&db, "daiwakenpo"), edited);
}

async fn broken_tenant_file_is_refused_naming_the_field(backend: Backend) {
    let db = seeded(backend).await;
    let before = export(&db, "daiwakenpo");

    let cases: [(&str, String); 5] = [
        (
            "password.max_length",
            before.replacen("max_length = 64", "max_length = 6", 1),
        ),
        ("mfa.methods", with_methods(&before, "[]")),
        (
            "mfa.methods[0]: unknown variant `sms`",
            with_methods(&before, r#"["sms"]"#),
        ),
        ("theme.primary_color", before.replace("#0b4f8a", "navy")),
        ("pasword", format!("{before}\n[pasword]\nmin_length = 1\n")),
    ];
    for (field, text) in cases {
        assert_ne!(
            text, before,
            "{field}: the edit applies to the exported file"
        );
        let path = db.data_dir.path().join("broken.toml");
        std::fs::write(&path, &text).unwrap();
        let out = db.run(&["tenant", "apply", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{field}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(message.contains(field), "{field} not named in: {message}");
        assert!(message.contains("broken.toml"), "{message}");
        assert_eq!(
            export(&db, "daiwakenpo"),
            before,
            "{field}: the database changed"
        );
    }

    // Several broken rules: all are listed.
    let text = before
        .replacen("max_length = 64", "max_length = 6", 1)
        .replace("#0b4f8a", "navy");
    let out = db.run_with_input(&["tenant", "apply", "-"], &text);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("password.max_length")
            && stderr(&out).contains("theme.primary_color")
    );

    // Not a file at all.
    let out = db.run(&["tenant", "apply", "/nonexistent/tenant.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/tenant.toml"));
    let out = db.run_with_input(&["tenant", "apply", "-"], "this is = not toml [");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(export(&db, "daiwakenpo"), before);

    // Exporting an unknown tenant fails clearly.
    let out = db.run(&["tenant", "export", "nobody"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nobody"));
}

/// `text` with the value of `mfa.methods` replaced.
fn with_methods(text: &str, methods: &str) -> String {
    let start = text.find("methods = [").unwrap() + "methods = ".len();
    let end = start + text[start..].find(']').unwrap() + 1;
    format!("{}{methods}{}", &text[..start], &text[end..])
}

async fn host_of_another_tenant_is_refused(backend: Backend) {
    let db = seeded(backend).await;
    let kaneka_before = export(&db, "kanekakenpo");
    let text = kaneka_before.replacen(
        "\"www.kanekakenpo.localhost\"",
        "\"www.kanekakenpo.localhost\", \"www.daiwakenpo.localhost\"",
        1,
    );
    assert_ne!(text, kaneka_before);
    let out = db.run_with_input(&["tenant", "apply", "-"], &text);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("www.daiwakenpo.localhost"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("daiwakenpo"));
    assert_eq!(export(&db, "kanekakenpo"), kaneka_before);
}

async fn new_tenant_is_onboarded_from_a_file(backend: Backend) {
    let db = seeded(backend).await;
    let text = export(&db, "daiwakenpo")
        .replace("slug = \"daiwakenpo\"", "slug = \"testkenpo\"")
        .replace(DAIWA, "テスト健康保険組合")
        .replace("www.daiwakenpo.localhost", "portal.testkenpo.example");
    let out = db.run_with_input(&["tenant", "apply", "-"], &text);
    assert!(
        stderr(&out).contains("tenant testkenpo: created"),
        "{}",
        stderr(&out)
    );
    let list = stdout(&db.run(&["tenant", "list"]));
    assert!(
        list.contains("testkenpo") && list.contains("portal.testkenpo.example"),
        "{list}"
    );
    assert_eq!(export(&db, "testkenpo"), text);
}

on_both_backends!(member_add_prints_temporary_credentials_or_refuses_bad_input);

async fn member_add_prints_temporary_credentials_or_refuses_bad_input(backend: Backend) {
    let db = seeded(backend).await;
    let add = |args: &[&str]| {
        let mut all = vec!["member", "add"];
        all.extend_from_slice(args);
        db.run(&all)
    };
    let out = add(&[
        "daiwakenpo",
        "--name",
        "ダイワ ハナコ",
        "--birth-date",
        "1990-02-03",
        "--email",
        "hanako@example.jp",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Exactly one JSON object on stdout: what an operator prints on the letter.
    let printed: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let object = printed.as_object().unwrap();
    assert_eq!(object.len(), 2);
    let user_id = object["user_id"].as_str().unwrap();
    let password = object["password"].as_str().unwrap();
    assert!(user_id.len() >= 8 && password.len() >= 12);
    assert!(
        !stderr(&out).contains(password),
        "the password is not logged"
    );

    for (args, says) in [
        (
            vec![
                "nobody",
                "--name",
                "x",
                "--birth-date",
                "1990-01-01",
                "--email",
                "a@example.jp",
            ],
            "nobody",
        ),
        (
            vec![
                "daiwakenpo",
                "--name",
                "x",
                "--birth-date",
                "1990-13-01",
                "--email",
                "a@example.jp",
            ],
            "--birth-date",
        ),
        (
            vec![
                "daiwakenpo",
                "--name",
                "x",
                "--birth-date",
                "2999-01-01",
                "--email",
                "a@example.jp",
            ],
            "--birth-date",
        ),
        (
            vec![
                "daiwakenpo",
                "--name",
                "x",
                "--birth-date",
                "1990-01-01",
                "--email",
                "a@b\r\nc",
            ],
            "--email",
        ),
        (
            vec![
                "daiwakenpo",
                "--name",
                "",
                "--birth-date",
                "1990-01-01",
                "--email",
                "a@example.jp",
            ],
            "--name",
        ),
        (
            vec![
                "daiwakenpo",
                "--name",
                "a\u{7}b",
                "--birth-date",
                "1990-01-01",
                "--email",
                "a@example.jp",
            ],
            "--name",
        ),
    ] {
        let out = add(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
}
