//! What each society's pages look like where its own guide or its colours decide: the
//! passkey is named and then 「次へ」 on kanekakenpo (guide 【2-1】【7】) but 「ＯＫ」 on
//! daiwakenpo (§2-3 ⑥); service icons drawn with `currentColor` come in the society's
//! colour; the contact text is said once; dates read 2026/11/01 everywhere.

use crate::browser_like::{host_of, Browser};
use crate::harness::{on_both_backends, repo_root, Backend, TestApp};

on_both_backends!(icons_contact_and_dates_follow_the_society);

/// The tenant file's value of `key` (a quoted string).
fn tenant_value(slug: &str, key: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join(format!("tenants/{slug}.toml"))).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{key} in tenants/{slug}.toml"))
        .to_owned()
}

async fn icons_contact_and_dates_follow_the_society(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for slug in ["daiwakenpo", "kanekakenpo"] {
        let b = Browser::new(&app, &host_of(slug));
        // Icons: the society's primary colour, not currentColor (black inside <img>).
        let colour = tenant_value(slug, "primary_color");
        let icon = b.get("/static/services/checkup.svg").await;
        assert_eq!(icon.status, 200, "{}", icon.summary());
        assert_eq!(icon.headers["content-type"], "image/svg+xml");
        assert!(icon.body.contains(&colour), "{slug}: {}", icon.body);
        assert!(!icon.body.contains("currentColor"), "{slug}: {}", icon.body);
        // The contact text: office and hours, once, after the page's own sentence.
        let contact = tenant_value(slug, "contact");
        assert!(!contact.contains("お問い合わせください"), "{contact}");
        let top = b.get("/").await;
        let text = top.text();
        assert_eq!(text.matches(&contact).count(), 1, "{text}");
        assert_eq!(text.matches("お問い合わせください").count(), 1, "{text}");
    }
}
