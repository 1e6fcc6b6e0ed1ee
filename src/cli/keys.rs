//! `gridcast keys create | list | revoke`: API keys in the job store.

use anyhow::{Context, bail};
use gridcast_store::{Role, Store};

use crate::config::{FileSettings, ServiceArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once; only its hash is stored.
    Create {
        /// Tenant the key belongs to: 1 to 64 letters, digits, `-` or `_`.
        #[arg(long)]
        tenant: String,
        /// read, submit (read and submit/cancel jobs) or admin (every tenant, schedules).
        #[arg(long)]
        role: String,
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// List keys: id, tenant, role, creation and revocation times (never the keys).
    List {
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// Revoke a key by the id that `create` and `list` print.
    Revoke {
        id: String,
        #[command(flatten)]
        service: ServiceArgs,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let service = match &args.command {
        KeysCommand::Create { service, .. }
        | KeysCommand::List { service }
        | KeysCommand::Revoke { service, .. } => service,
    };
    let config = service.resolve(FileSettings::default())?;
    let runtime = tokio::runtime::Runtime::new().context("failed to start the tokio runtime")?;
    runtime.block_on(async {
        let store = Store::open(&crate::cli::serve::store_config(&config))
            .await
            .context("failed to open the job store")?;
        let outcome = match args.command {
            KeysCommand::Create { tenant, role, .. } => {
                let role: Role = role
                    .parse()
                    .map_err(|message: String| anyhow::anyhow!("--role: {message}"))?;
                let (key, secret) = store
                    .create_api_key(&tenant, role, store.now().await?)
                    .await?;
                eprintln!(
                    "created key {} for tenant {} with role {} in {}; it is shown only now:",
                    key.id,
                    key.tenant,
                    key.role.as_str(),
                    gridcast_store::redact_url(&config.database_url)
                );
                println!("{secret}");
                Ok(())
            }
            KeysCommand::List { .. } => {
                println!("id\ttenant\trole\tcreated_at\trevoked_at");
                for key in store.list_api_keys().await? {
                    let revoked = key
                        .revoked_at
                        .map(|time| time.to_rfc3339())
                        .unwrap_or_else(|| "-".to_owned());
                    println!(
                        "{}\t{}\t{}\t{}\t{revoked}",
                        key.id,
                        key.tenant,
                        key.role.as_str(),
                        key.created_at.to_rfc3339()
                    );
                }
                Ok(())
            }
            KeysCommand::Revoke { id, .. } => {
                if store.revoke_api_key(&id, store.now().await?).await? {
                    println!("revoked key {id}");
                    Ok(())
                } else {
                    // Someone may pass the whole key by mistake: never echo a secret.
                    let shown = if id.starts_with("gck_") {
                        "gck_…"
                    } else {
                        id.as_str()
                    };
                    bail!("no live key has id `{shown}`; `gridcast keys list` shows the ids")
                }
            }
        };
        store.close().await;
        outcome
    })
}
