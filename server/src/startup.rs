//! Builds the application from its configuration, binds both listeners and reports the
//! addresses actually bound (port 0 picks a free one).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::Server;

use crate::auth::password::PasswordHasher;
use crate::config::Config;
use crate::crypto::SecretBox;
use crate::listener::DrainingListener;
use crate::mail::worker::Worker;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tenant::{TenantFile, TenantRegistry};
use crate::theme::Themes;
use crate::web::{member_app, ops_app, AppState};

pub struct Application {
    state: Arc<AppState>,
    /// Turns true on SIGTERM: the mail worker and the sweeper stop.
    stop: tokio::sync::watch::Sender<bool>,
    background: Vec<tokio::task::JoinHandle<()>>,
    member: DrainingListener,
    ops: DrainingListener,
    pub member_addr: SocketAddr,
    pub ops_addr: SocketAddr,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = Store::connect(&config).await?;
        store.migrate().await?;
        let seeded = import_seed_tenants(&store, &config.tenants_dir).await?;
        spawn_statistics_refresher(store.clone());

        crate::throttle::set_ipv6_prefix(config.throttle_ipv6_prefix);
        let mut state = build_state(config, store).await?;
        state
            .tenants
            .spawn_refresher(Duration::from_millis(state.config.tenant_refresh_ms));
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let mut background = vec![Worker::new(
            &state.config,
            state.store.clone(),
            state.mailer.clone(),
            Arc::clone(&state.metrics),
        )?
        .spawn(stopping.clone())];

        let member = bind(state.config.listen, "PORTAL_LISTEN").await?;
        let ops = bind(state.config.ops_listen, "PORTAL_OPS_LISTEN").await?;
        let member_addr = member.local_addr();
        let ops_addr = ops.local_addr();
        if state.config.public_port.is_none() && state.config.base_domain == "localhost" {
            // Links in mail and letters name the port actually bound.
            state.config.public_port = Some(member_addr.port());
        }
        if state.config.demo() && seeded {
            create_demo_accounts(&state).await?;
        }
        let state = Arc::new(state);
        background.extend(crate::member::recovery::spawn_worker(
            Arc::clone(&state),
            stopping.clone(),
        ));
        background.push(crate::sweeper::spawn(Arc::clone(&state), stopping));
        Ok(Self {
            state,
            stop,
            background,
            member,
            ops,
            member_addr,
            ops_addr,
        })
    }
    /// Serves until SIGINT or SIGTERM; then stops accepting connections, lets requests in
    /// flight finish (at most `PORTAL_SHUTDOWN_GRACE_MS`), lets the mail worker finish the
    /// mails in hand and release its other claims, and closes the database.
    pub async fn run(self) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let grace = Duration::from_millis(self.state.config.shutdown_grace_ms);
        // Each listener stops accepting once it has taken what the kernel already holds.
        let (member_listener, member_drained) = self.member.until(stop_rx.clone());
        let (ops_listener, ops_drained) = self.ops.until(stop_rx);
        let member = Server::new_with_acceptor(member_listener).run_with_graceful_shutdown(
            member_app(Arc::clone(&self.state)),
            member_drained,
            Some(grace),
        );
        let ops = Server::new_with_acceptor(ops_listener).run_with_graceful_shutdown(
            ops_app(Arc::clone(&self.state)),
            ops_drained,
            Some(grace),
        );
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing requests in flight");
            let _ = stop_tx.send(true);
        });
        let (a, b) = tokio::join!(member, ops);
        // No request is left: what they handed to the background is finished next.
        let _ = self.stop.send(true);
        let finished =
            tokio::time::timeout(grace, futures_util::future::join_all(self.background)).await;
        if finished.is_err() {
            tracing::warn!("background work did not finish within the grace period");
        }
        a.context("member listener")?;
        b.context("ops listener")?;
        self.state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// How often each node refreshes the query planner's statistics (see
/// [`Store::refresh_statistics`]).
const STATISTICS_EVERY: Duration = Duration::from_secs(60 * 60);

/// Refreshes the planner's statistics now and then every [`STATISTICS_EVERY`].
fn spawn_statistics_refresher(store: Store) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(STATISTICS_EVERY);
        loop {
            every.tick().await;
            if let Err(error) = store.refresh_statistics().await {
                tracing::warn!(%error, "refreshing planner statistics");
            }
        }
    });
}

/// Everything requests and service functions need, on a migrated database; also what the
/// command line uses to run service functions without serving.
/// Memory kept for uploaded images (logos, service icons) across all tenants.
const UPLOAD_CACHE_BYTES: u64 = 64 * 1024 * 1024;

pub async fn build_state(config: Config, store: Store) -> anyhow::Result<AppState> {
    let tenants = TenantRegistry::new(store.clone(), &config.base_domain).await?;
    let themes = Themes::new(&config.themes_dir)
        .with_context(|| format!("loading themes from {}", config.themes_dir.display()))?;
    let console = Themes::console(&config.admin_ui_dir).with_context(|| {
        format!(
            "loading the admin console from {}",
            config.admin_ui_dir.display()
        )
    })?;
    let secrets = SecretBox::load_rotating(&config)?;
    let csrf_key = secrets.derive_key("csrf");
    let passkeys = crate::mfa::passkey::RelyingParties::new(config.secure_cookies());
    let mailer = Mailer::new(&config, themes.clone(), secrets.clone());
    let hasher = PasswordHasher::new(&config)?;
    let metrics = Arc::new(Metrics::new());
    let trusted_proxies = crate::web::edge::TrustedProxies(Arc::new(config.trusted_proxies()?));
    Ok(AppState {
        trusted_proxies,
        pages: Default::default(),
        config,
        store,
        tenants,
        themes,
        console,
        mailer,
        metrics,
        hasher,
        secrets,
        csrf_key,
        passkeys,
        recovery: Default::default(),
        uploads: moka::future::Cache::builder()
            .weigher(|_, v: &Arc<(String, Vec<u8>)>| v.1.len().try_into().unwrap_or(u32::MAX))
            .max_capacity(UPLOAD_CACHE_BYTES)
            .build(),
    })
}

async fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<DrainingListener> {
    DrainingListener::bind(addr)
        .await
        .with_context(|| format!("{key}: cannot listen on {addr}"))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// On a database without tenants, applies every `*.toml` in the tenants folder. A broken
/// file stops start-up: serving without a society it was told to serve is worse. Returns
/// whether it did (a new installation).
pub async fn import_seed_tenants(store: &Store, dir: &Path) -> anyhow::Result<bool> {
    // Nodes starting together on a new PostgreSQL database: one imports, the others wait
    // and then find the tenants there.
    let lock = store.lock_seeding().await?;
    let imported = import_unless_present(store, dir).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    imported
}

async fn import_unless_present(store: &Store, dir: &Path) -> anyhow::Result<bool> {
    if store.tenant_count().await? > 0 {
        return Ok(false);
    }
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect(),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "no tenant definitions to import");
            return Ok(false);
        }
    };
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let file = TenantFile::parse(&text)
            .with_context(|| format!("{}: invalid tenant definition", path.display()))?;
        store.apply_tenant(&file).await?;
        tracing::info!(tenant = %file.slug, file = %path.display(), "tenant imported");
    }
    Ok(true)
}

/// The demo set-up of a new installation (`PORTAL_DEMO`, on by default): every seed tenant
/// gets one demo member and one demo admin invitation, printed this once. Runs only right
/// after the seed tenants were imported into an empty database, so a restart or a tenant
/// applied later never gets any.
async fn create_demo_accounts(state: &AppState) -> anyhow::Result<()> {
    let email = crate::mail::EmailAddress::parse("demo.member@example.jp").expect("valid address");
    for tenant in state.store.tenants().await? {
        let details = crate::member::MemberDetails {
            display_name: "ダイワ タロウ",
            birth_date: "1980-04-01",
            email: &email,
        };
        let credentials =
            crate::member::create_member(&state.store, &state.hasher, &tenant, &details).await?;
        tracing::info!(
            "demo member of {}: temporary user ID {} password {} birth date {}",
            tenant.slug,
            credentials.user_id,
            credentials.password,
            details.birth_date
        );
        let invitation = crate::admin::accounts::invite(
            state,
            &tenant,
            &format!("admin@{}", tenant.settings.mail.domain),
            crate::store::AdminRole::Admin,
            None,
        )
        .await
        .map_err(|e| anyhow::anyhow!("demo admin invitation: {e}"))?;
        tracing::info!(
            "demo admin invitation of {}: open {} (valid 24 hours)",
            tenant.slug,
            invitation.setup_url
        );
    }
    Ok(())
}
