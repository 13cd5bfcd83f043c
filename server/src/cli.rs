//! The `portal` command line.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::startup::Application;
use crate::store::{ApplyOutcome, Store};
use crate::tenant::{TenantFile, TenantFileError};

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
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// List every tenant.
    List,
    /// Create or update a tenant from a tenant file (`-` reads standard input).
    Apply { file: PathBuf },
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
        Command::Tenant(command) => {
            let store = Store::connect(&config).await?;
            store.migrate().await.context("migrating")?;
            tenant_command(&store, command).await?;
            store.close().await;
        }
    }
    Ok(())
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
        TenantCommand::Apply { file } => {
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
            let outcome = store.apply_tenant(&tenant).await.map_err(|e| match e {
                crate::store::StoreError::Conflict(msg) => {
                    CliError::Input(format!("{name}: {msg}; nothing changed"))
                }
                other => CliError::Other(other.into()),
            })?;
            let word = match outcome {
                ApplyOutcome::Created => "created",
                ApplyOutcome::Updated => "updated",
                ApplyOutcome::Unchanged => "unchanged",
            };
            eprintln!("tenant {}: {word}", tenant.slug);
        }
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

fn read_input(path: &PathBuf) -> std::io::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path)
    }
}
