//! The `Host` header selects the tenant (SPEC §2).

use std::time::Duration;

use crate::harness::{
    eventually, on_both_backends, raw_request, stderr, Backend, TestApp, DAIWA, KANEKA,
};

on_both_backends!(
    each_tenant_is_served_on_its_own_host,
    host_forms_are_normalised,
    unknown_hosts_get_a_404_that_names_no_tenant,
    disabled_tenant_gets_503_and_changes_reach_a_running_server,
    ops_listener_is_separate_from_tenant_hosts,
    assets_come_from_the_tenant_theme_with_cache_headers,
);

async fn each_tenant_is_served_on_its_own_host(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let daiwa = app.get("daiwakenpo.localhost", "/").await;
    assert_eq!(daiwa.status, 200);
    assert!(daiwa.body.contains(DAIWA));
    assert!(!daiwa.body.contains(KANEKA));
    assert!(daiwa.body.contains(r#"<html lang="ja">"#));
    assert!(daiwa.body.contains(">ログイン</a>"));
    assert!(daiwa.header("content-type").starts_with("text/html"));

    let kaneka = app.get("kanekakenpo.localhost", "/").await;
    assert_eq!(kaneka.status, 200);
    assert!(kaneka.body.contains(KANEKA));
    assert!(!kaneka.body.contains(DAIWA));
    // kanekakenpo's theme overrides one locale text: its manual says "KOSMO Web".
    assert!(kaneka.body.contains("KOSMO Web<"));
    assert!(daiwa.body.contains("KOSMO Communication Web<"));

    // Aliases listed in the tenant files.
    let alias = app.get("www.daiwakenpo.localhost", "/").await;
    assert_eq!(alias.status, 200);
    assert!(alias.body.contains(DAIWA));
    let alias = app.get("www.kanekakenpo.localhost", "/").await;
    assert!(alias.body.contains(KANEKA));
}

async fn host_forms_are_normalised(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for host in [
        "daiwakenpo.localhost:8080",
        "DAIWAKENPO.LocalHost",
        "daiwakenpo.localhost.",
        "daiwakenpo.localhost.:443",
        "WWW.DAIWAKENPO.LOCALHOST:80",
    ] {
        let page = app.get(host, "/").await;
        assert_eq!(page.status, 200, "{host}");
        assert!(page.body.contains(DAIWA), "{host}");
    }
}

async fn unknown_hosts_get_a_404_that_names_no_tenant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for host in [
        "nobody.localhost",
        "localhost",
        "127.0.0.1",
        "daiwakenpo.example.com",
        // a slug under another tenant's host is not that tenant
        "daiwakenpo.kanekakenpo.localhost",
        "daiwakenpo.localhost:notaport",
        "daiwa kenpo.localhost",
    ] {
        let page = app.get(host, "/").await;
        assert_eq!(page.status, 404, "{host}");
        assert!(
            !page.body.contains(DAIWA) && !page.body.contains(KANEKA),
            "{host}: {}",
            page.body
        );
        assert!(
            !page.body.contains("daiwakenpo") && !page.body.contains("kanekakenpo"),
            "{host}"
        );
        assert!(page.body.contains("ページが見つかりません"), "{host}");
    }
    // No Host header at all (HTTP/1.0 allows that).
    let (status, text) = raw_request(app.member, "GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, 404);
    assert!(!text.contains(DAIWA) && !text.contains(KANEKA));

    // A known tenant, an unknown path: the tenant's own 404 page.
    let page = app.get("daiwakenpo.localhost", "/no-such-page").await;
    assert_eq!(page.status, 404);
    assert!(page.body.contains(DAIWA));
}

async fn disabled_tenant_gets_503_and_changes_reach_a_running_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.get("kanekakenpo.localhost", "/").await.status, 200);

    let exported = app.db.run(&["tenant", "export", "kanekakenpo"]);
    assert!(exported.status.success(), "{}", stderr(&exported));
    let definition = String::from_utf8(exported.stdout).unwrap();
    let disabled = definition.replacen("enabled = true", "enabled = false", 1);
    assert_ne!(disabled, definition);
    let applied = app.db.run_with_input(&["tenant", "apply", "-"], &disabled);
    assert!(applied.status.success(), "{}", stderr(&applied));

    // The running server notices without a restart.
    let noticed = eventually(Duration::from_secs(10), || async {
        app.get("kanekakenpo.localhost", "/").await.status == 503
    })
    .await;
    assert!(noticed, "disabled tenant still served:\n{}", app.log());
    let page = app.get("kanekakenpo.localhost", "/").await;
    assert!(page.body.contains("ただいまご利用いただけません"));
    assert!(!page.body.contains(KANEKA));
    assert_eq!(app.get("www.kanekakenpo.localhost", "/").await.status, 503);
    // The other tenant is untouched.
    assert_eq!(app.get("daiwakenpo.localhost", "/").await.status, 200);

    // A renamed society shows its new name once re-enabled.
    let renamed = definition.replacen(KANEKA, "カネカ健保（新名称）", 1);
    let applied = app.db.run_with_input(&["tenant", "apply", "-"], &renamed);
    assert!(applied.status.success(), "{}", stderr(&applied));
    let back = eventually(Duration::from_secs(10), || async {
        let page = app.get("kanekakenpo.localhost", "/").await;
        page.status == 200 && page.body.contains("カネカ健保（新名称）")
    })
    .await;
    assert!(back, "re-enabled tenant not served:\n{}", app.log());
}

async fn ops_listener_is_separate_from_tenant_hosts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let health = app.get_at(app.ops, "localhost", "/healthz").await;
    assert_eq!(health.status, 200);
    let ready = app.get_at(app.ops, "localhost", "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));

    // Not through a tenant host on the member listener...
    for path in ["/healthz", "/readyz"] {
        let page = app.get("daiwakenpo.localhost", path).await;
        assert_eq!(page.status, 404, "{path}");
    }
    // ...and the ops listener serves no tenant.
    let page = app.get_at(app.ops, "daiwakenpo.localhost", "/").await;
    assert_eq!(page.status, 404);
    assert!(!page.body.contains(DAIWA));
}

async fn assets_come_from_the_tenant_theme_with_cache_headers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let daiwa_logo = app.get("daiwakenpo.localhost", "/static/logo.svg").await;
    let kaneka_logo = app.get("kanekakenpo.localhost", "/static/logo.svg").await;
    assert_eq!((daiwa_logo.status, kaneka_logo.status), (200, 200));
    assert_eq!(daiwa_logo.header("content-type"), "image/svg+xml");
    assert_ne!(
        daiwa_logo.body, kaneka_logo.body,
        "each society has its own logo"
    );
    assert!(daiwa_logo.header("cache-control").contains("max-age="));
    assert!(!daiwa_logo.header("etag").is_empty());

    // Shared assets fall back to the default theme.
    let css = app
        .get("kanekakenpo.localhost", "/static/css/portal.css")
        .await;
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").starts_with("text/css"));

    // Tenant colours reach the page as CSS variables.
    let daiwa_css = app.get("daiwakenpo.localhost", "/theme.css?v=1").await;
    let kaneka_css = app.get("kanekakenpo.localhost", "/theme.css?v=1").await;
    assert!(
        daiwa_css.body.contains("--color-primary: #0b4f8a;"),
        "{}",
        daiwa_css.body
    );
    assert!(
        kaneka_css.body.contains("--color-primary: #1d7a46;"),
        "{}",
        kaneka_css.body
    );
    let top = app.get("daiwakenpo.localhost", "/").await;
    assert!(top.body.contains("theme.css?v="));

    // Nothing outside the theme folders, however the path is written.
    for path in [
        "/static/../tenants/daiwakenpo.toml",
        "/static/%2e%2e/%2e%2e/Cargo.toml",
        "/static/..%2F..%2FCargo.toml",
        "/static/css/../../templates/base.html",
        "/static/nope.svg",
    ] {
        let page = app.get("daiwakenpo.localhost", path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(
            !page.body.contains("[workspace]") && !page.body.contains("{%"),
            "{path}"
        );
    }
}
