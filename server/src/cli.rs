//! The `portal` command line.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::crypto::SecretBox;
use crate::mail::{EmailAddress, MailError, Mailer};
use crate::startup::Application;
use crate::store::Store;
use crate::tenant::{TenantFile, TenantFileError};
use crate::theme::Themes;

#[derive(Debug, Parser)]
#[command(
    name = "portal",
    version,
    about = "Member portal engine for health insurance societies"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve members, society admins and operations (the default).
    Serve,
    /// Apply the database migrations that have not run yet.
    Migrate,
    /// Onboard and inspect tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Inspect and operate the mail outbox.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Create members.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Society admins: invitations and API tokens.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Platform operators: tokens of the ops API.
    #[command(subcommand)]
    Ops(OpsCommand),
    /// Secrets at rest.
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Manage the ops API's bearer tokens.
    #[command(subcommand)]
    Token(OpsTokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum OpsTokenCommand {
    /// Create a token; prints {"token": …} (shown this once; only its hash is kept).
    Create { name: String },
    /// Revoke every live token with this name.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Re-seal every secret at rest under PORTAL_SECRET_KEY; secrets sealed under
    /// PORTAL_SECRET_KEY_PREVIOUS are opened with it. Safe to run again.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin of a society and mail the invitation; prints
    /// {"admin_id": …, "setup_url": …}.
    Create {
        slug: String,
        email: String,
        /// admin (everything) or operator (members and the audit log only).
        #[arg(long, default_value = "admin")]
        role: String,
    },
    /// Create an API token for an admin; prints {"token": …} (shown this once).
    Token {
        slug: String,
        email: String,
        #[arg(long)]
        name: String,
        /// The token's role: the admin's own or narrower.
        #[arg(long)]
        role: Option<String>,
        /// Days until it expires (at most 365).
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
    /// Lift the lock of a society's admin (one who is locked out and has no other admin
    /// to do it in the console); the admin is told by mail. Prints {"admin_id", "state"}.
    Unlock { slug: String, email: String },
    /// Remove every second factor of a society's admin and mail them a fresh invitation
    /// link to set a new password and factor; prints {"admin_id": …, "setup_url": …}.
    #[command(name = "reset-factors")]
    ResetFactors { slug: String, email: String },
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Create a member with temporary credentials; prints {"user_id": …, "password": …}.
    Add {
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long = "birth-date")]
        birth_date: String,
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Queued, retrying, failed and sent mails per tenant.
    Status,
    /// Queue failed mail again: one by id, or every failed mail with --failed.
    Retry {
        #[arg(required_unless_present = "failed", conflicts_with = "failed")]
        id: Option<String>,
        #[arg(long)]
        failed: bool,
    },
    /// Queue the tenant's test mail to an address, to check its mail set-up.
    Test { slug: String, address: String },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// List every tenant.
    List,
    /// Write `tenants/<slug>.toml` (every setting, each with a comment) and the folder
    /// `themes/<slug>/` for a new society; nothing is applied yet.
    New { slug: String },
    /// Create or update a tenant from a tenant file (`-` reads standard input).
    Apply {
        file: PathBuf,
        /// Print the changes field by field and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop serving a tenant: its pages answer 「ご利用いただけません」, its sessions end.
    Disable { slug: String },
    /// Serve a disabled tenant again.
    Enable { slug: String },
    /// Print a tenant's definition in the tenant file format.
    Export { slug: String },
}

/// Why the command failed; each kind has its own exit status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input: configuration or a tenant file. Exit status 2.
    #[error("{0}")]
    Input(String),
    /// Anything else. Exit status 1.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Input(_) => 2,
            CliError::Other(_) => 1,
        }
    }
}

pub async fn run(cli: Cli, config: Config) -> Result<(), CliError> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config).await?;
            // Tests and scripts read the bound addresses from this line.
            tracing::info!("listening member={} ops={}", app.member_addr, app.ops_addr);
            app.run().await?;
        }
        Command::Migrate => {
            let store = Store::connect(&config).await?;
            store.migrate().await.context("migrating")?;
            eprintln!("migrations applied");
        }
        Command::Tenant(TenantCommand::New { slug }) => new_tenant(&config, &slug)?,
        Command::Ops(OpsCommand::Token(command)) => {
            let store = Store::connect(&config).await?;
            store.migrate().await.context("migrating")?;
            match command {
                OpsTokenCommand::Create { name } => {
                    let token = crate::ops::create_token(&store, &name)
                        .await
                        .map_err(ops_error)?;
                    println!("{}", serde_json::json!({ "token": token }));
                }
                OpsTokenCommand::Revoke { name } => {
                    let n = store
                        .revoke_operator_tokens(&name)
                        .await
                        .map_err(anyhow::Error::from)?;
                    eprintln!("{n} token(s) named '{name}' revoked");
                }
            }
            store.close().await;
        }
        Command::Secrets(SecretsCommand::Rotate) => {
            let store = Store::connect(&config).await?;
            store.migrate().await.context("migrating")?;
            let secrets = SecretBox::load_rotating(&config)?;
            let counts = crate::crypto::rotate(&store, &secrets).await?;
            for (what, n) in &counts {
                eprintln!("{what}: {n} re-sealed");
            }
            store.close().await;
        }
        Command::Tenant(command) => {
            let store = Store::connect(&config).await?;
            store.migrate().await.context("migrating")?;
            tenant_command(&store, command).await?;
            store.close().await;
        }
        Command::Member(MemberCommand::Add {
            slug,
            name,
            birth_date,
            email,
        }) => {
            let bad =
                |field: &str, e: &dyn std::fmt::Display| CliError::Input(format!("--{field}: {e}"));
            let name = crate::member::check_display_name(&name).map_err(|e| bad("name", &e))?;
            let birth_date =
                crate::member::check_birth_date(&birth_date).map_err(|e| bad("birth-date", &e))?;
            let email = EmailAddress::parse(&email).map_err(|e| bad("email", &e))?;
            let store = Store::connect(&config).await?;
            store.migrate().await.context("migrating")?;
            let tenant = store
                .tenant_by_slug(&slug)
                .await
                .map_err(anyhow::Error::from)?
                .ok_or_else(|| CliError::Input(format!("no tenant '{slug}'")))?;
            let hasher = crate::auth::password::PasswordHasher::new(&config)?;
            let details = crate::member::MemberDetails {
                display_name: name,
                birth_date,
                email: &email,
            };
            let credentials =
                crate::member::create_member(&store, &hasher, &tenant, &details).await?;
            println!(
                "{}",
                serde_json::to_string(&credentials).expect("serialisable")
            );
            store.close().await;
        }
        Command::Admin(command) => {
            let store = Store::connect(&config).await?;
            store.migrate().await.context("migrating")?;
            let state = crate::startup::build_state(config, store).await?;
            let result = admin_command(&state, command).await;
            state.store.close().await;
            result?;
        }
        Command::Mail(command) => {
            let store = Store::connect(&config).await?;
            store.migrate().await.context("migrating")?;
            mail_command(&config, &store, command).await?;
            store.close().await;
        }
    }
    Ok(())
}

async fn admin_command(
    state: &crate::state::AppState,
    command: AdminCommand,
) -> Result<(), CliError> {
    use crate::admin::ServiceError;
    use crate::store::AdminRole;
    let role_of = |role: &str| {
        AdminRole::parse(role).ok_or_else(|| {
            CliError::Input(format!("--role: '{role}' is neither admin nor operator"))
        })
    };
    let tenant_of = |slug: String| async move {
        state
            .store
            .tenant_by_slug(&slug)
            .await
            .map_err(anyhow::Error::from)?
            .ok_or_else(|| CliError::Input(format!("no tenant '{slug}'")))
    };
    let service = |e: ServiceError| match e {
        ServiceError::Invalid(problems) => CliError::Input(
            problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.message.as_deref().unwrap_or(p.code)))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        ServiceError::Conflict(what) => CliError::Input(what.replace('_', " ")),
        ServiceError::NotFound => CliError::Input("not found".into()),
        other => CliError::Other(other.into()),
    };
    match command {
        AdminCommand::Create { slug, email, role } => {
            let role = role_of(&role)?;
            let tenant = tenant_of(slug).await?;
            let invitation = crate::admin::accounts::invite(state, &tenant, &email, role, None)
                .await
                .map_err(service)?;
            println!(
                "{}",
                serde_json::to_string(&invitation).expect("serialisable")
            );
        }
        AdminCommand::Token {
            slug,
            email,
            name,
            role,
            days,
        } => {
            let tenant = tenant_of(slug).await?;
            let admin = state
                .store
                .admin_by_email(&tenant.id, &email.trim().to_lowercase())
                .await
                .map_err(anyhow::Error::from)?
                .filter(|a| a.state == crate::store::AdminState::Active)
                .ok_or_else(|| CliError::Input(format!("no active admin '{email}'")))?;
            let role = match role {
                Some(r) => role_of(&r)?,
                None => admin.role,
            };
            let token = crate::admin::tokens::create(
                state,
                &tenant,
                &admin.id,
                admin.role,
                &name,
                role,
                days,
                ("", "portal admin token"),
            )
            .await
            .map_err(service)?;
            println!("{}", serde_json::json!({ "token": token.token }));
        }
        AdminCommand::Unlock { slug, email } => {
            let tenant = tenant_of(slug).await?;
            let admin = admin_of(state, &tenant, &email).await?;
            let admin = crate::admin::accounts::unlock(state, &tenant, None, &admin.id)
                .await
                .map_err(service)?;
            println!(
                "{}",
                serde_json::json!({ "admin_id": admin.id.as_str(), "state": admin.state.as_str() })
            );
        }
        AdminCommand::ResetFactors { slug, email } => {
            let tenant = tenant_of(slug).await?;
            let admin = admin_of(state, &tenant, &email).await?;
            let reset = crate::admin::accounts::reset_factors(state, &tenant, None, &admin.id)
                .await
                .map_err(service)?;
            println!(
                "{}",
                serde_json::json!({
                    "admin_id": reset.admin.id.as_str(),
                    "setup_url": reset.setup_url,
                })
            );
        }
    }
    Ok(())
}

/// The admin of `tenant` with this address, whatever their state.
async fn admin_of(
    state: &crate::state::AppState,
    tenant: &crate::tenant::Tenant,
    email: &str,
) -> Result<crate::store::Admin, CliError> {
    state
        .store
        .admin_by_email(&tenant.id, &email.trim().to_lowercase())
        .await
        .map_err(anyhow::Error::from)?
        .ok_or_else(|| CliError::Input(format!("no admin '{email}'")))
}

async fn tenant_command(store: &Store, command: TenantCommand) -> Result<(), CliError> {
    match command {
        TenantCommand::List => {
            println!("{:<20} {:<8} {:<40} name", "slug", "enabled", "extra hosts");
            for t in store.tenants().await.map_err(anyhow::Error::from)? {
                println!(
                    "{:<20} {:<8} {:<40} {}",
                    t.slug,
                    if t.enabled { "yes" } else { "no" },
                    t.aliases.join(","),
                    t.display_name
                );
            }
        }
        TenantCommand::Apply { file, dry_run } => {
            let name = file.display().to_string();
            let text = read_input(&file).map_err(|e| CliError::Input(format!("{name}: {e}")))?;
            let tenant = TenantFile::parse(&text).map_err(|e| {
                CliError::Input(match e {
                    TenantFileError::Syntax(msg) => format!("{name}: not a tenant file:\n{msg}"),
                    TenantFileError::Invalid(errors) => format!(
                        "{name}: invalid tenant definition, nothing changed:\n{}",
                        errors
                            .iter()
                            .map(|e| format!("  {e}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    ),
                })
            })?;
            let report = crate::ops::apply_with(
                store,
                None,
                crate::ops::Operator("cli"),
                &tenant,
                crate::ops::Expect::Either,
                dry_run,
            )
            .await
            .map_err(|e| match e {
                crate::ops::OpsError::Internal(e) => CliError::Other(e),
                other => CliError::Input(format!("{name}: {other}; nothing changed")),
            })?;
            for change in &report.changes {
                println!("{}: {} -> {}", change.field, change.before, change.after);
            }
            if dry_run {
                eprintln!(
                    "tenant {}: would be {} ({} field(s)); nothing changed (dry run)",
                    tenant.slug,
                    report.outcome,
                    report.changes.len()
                );
            } else {
                eprintln!("tenant {}: {}", tenant.slug, report.outcome);
            }
        }
        TenantCommand::Disable { slug } => {
            crate::ops::set_enabled(store, None, crate::ops::Operator("cli"), &slug, false)
                .await
                .map_err(ops_error)?;
            eprintln!("tenant {slug}: disabled");
        }
        TenantCommand::Enable { slug } => {
            crate::ops::set_enabled(store, None, crate::ops::Operator("cli"), &slug, true)
                .await
                .map_err(ops_error)?;
            eprintln!("tenant {slug}: enabled");
        }
        TenantCommand::New { .. } => unreachable!("handled without a database"),
        TenantCommand::Export { slug } => {
            let tenant = store
                .tenant_by_slug(&slug)
                .await
                .map_err(anyhow::Error::from)?
                .ok_or_else(|| CliError::Input(format!("no tenant '{slug}'")))?;
            print!("{}", tenant.to_file().to_toml());
        }
    }
    Ok(())
}

fn ops_error(e: crate::ops::OpsError) -> CliError {
    match e {
        crate::ops::OpsError::Internal(e) => CliError::Other(e),
        other => CliError::Input(other.to_string()),
    }
}

/// `portal tenant new <slug>`: the tenant file and the theme folder, never overwriting.
fn new_tenant(config: &Config, slug: &str) -> Result<(), CliError> {
    let text = crate::ops::scaffold(slug).map_err(ops_error)?;
    let file = config.tenants_dir.join(format!("{slug}.toml"));
    if file.exists() {
        return Err(CliError::Input(format!(
            "{} already exists; nothing written",
            file.display()
        )));
    }
    std::fs::create_dir_all(&config.tenants_dir)
        .with_context(|| format!("creating {}", config.tenants_dir.display()))?;
    std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    let theme = config.themes_dir.join(slug);
    let statics = theme.join("static");
    std::fs::create_dir_all(&statics).with_context(|| format!("creating {}", statics.display()))?;
    let readme = theme.join("README.md");
    if !readme.exists() {
        std::fs::write(&readme, THEME_README.replace("{slug}", slug))
            .with_context(|| format!("writing {}", readme.display()))?;
    }
    eprintln!(
        "wrote {} and {}/; edit them, then: portal tenant apply {} --dry-run",
        file.display(),
        theme.display(),
        file.display()
    );
    Ok(())
}

const THEME_README: &str = "# Theme of {slug}\n\n\
Files here override the default theme (`themes/default/`) for this society only:\n\n\
- `static/`: images and styles, e.g. `static/logo.svg` (the tenant file's `theme.logo`);\n\
- `templates/`, `mail/`, `locales/ja.toml`: page templates, mail templates and texts with\n  \
  the same names as the default theme's. Most societies need none of these: colours, logo,\n  \
  welcome text and services are settings.\n";

async fn mail_command(
    config: &Config,
    store: &Store,
    command: MailCommand,
) -> Result<(), CliError> {
    match command {
        MailCommand::Status => {
            let counts = store.mail_counts().await.map_err(anyhow::Error::from)?;
            println!(
                "{:<20} {:>8} {:>8} {:>8} {:>8} {:>8}",
                "tenant", "queued", "retrying", "sending", "failed", "sent"
            );
            for c in counts {
                println!(
                    "{:<20} {:>8} {:>8} {:>8} {:>8} {:>8}",
                    c.tenant, c.queued, c.retrying, c.sending, c.failed, c.sent
                );
            }
        }
        MailCommand::Retry { id, failed: _ } => {
            let n = store
                .mail_requeue(id.as_deref(), crate::store::now_ms())
                .await
                .map_err(anyhow::Error::from)?;
            if n == 0 && id.is_some() {
                return Err(CliError::Input(format!(
                    "no failed mail with id {}",
                    id.unwrap_or_default()
                )));
            }
            eprintln!("{n} mail(s) queued again");
        }
        MailCommand::Test { slug, address } => {
            let to = EmailAddress::parse(&address)
                .map_err(|e| CliError::Input(format!("{address:?}: {e}")))?;
            let tenant = store
                .tenant_by_slug(&slug)
                .await
                .map_err(anyhow::Error::from)?
                .ok_or_else(|| CliError::Input(format!("no tenant '{slug}'")))?;
            let themes = Themes::new(&config.themes_dir)?;
            let secrets = SecretBox::load(config.secret_key.as_deref(), &config.data_dir)?;
            let mailer = Mailer::new(config, themes, secrets);
            let id = mailer
                .send(store, &tenant, &to, "test", tera::Context::new())
                .await
                .map_err(|e| match e {
                    MailError::RecipientRateLimited | MailError::TenantRateLimited => {
                        CliError::Input(e.to_string())
                    }
                    other => CliError::Other(other.into()),
                })?;
            println!("{id}");
        }
    }
    Ok(())
}

fn read_input(path: &PathBuf) -> std::io::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path)
    }
}
