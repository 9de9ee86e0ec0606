//! `signalbox tokens`: create, list and revoke the API tokens kept in the store (hashed), and
//! generate one for the config's `tokens:`.

use anyhow::{Context, bail};
use chrono::Utc;

use super::{TokensArgs, TokensCommand};
use crate::auth::Role;
use crate::store::Store;

pub(super) fn run(args: TokensArgs) -> anyhow::Result<()> {
    if let TokensCommand::Generate = args.command {
        out!("{}", crate::auth::generate().map_err(anyhow::Error::msg)?);
        return Ok(());
    }
    let config = args.config.load(&[])?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // `create` may be the first thing run against a new database: it is made (migrated).
        let store = match args.command {
            TokensCommand::Create { .. } => {
                Store::open(&config.database_url, &config.store).await?
            }
            _ => Store::open_existing(&config.database_url, &config.store).await?,
        };
        let names: Vec<&str> = config.tokens.iter().map(|t| t.name.as_str()).collect();
        let result = act(&store, &args.command, &names).await;
        store.close().await;
        result
    })
}

async fn act(store: &Store, command: &TokensCommand, config_names: &[&str]) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create {
            name,
            roles,
            sources,
        } => {
            let roles = roles
                .iter()
                .map(|r| {
                    Role::parse(r).ok_or_else(|| {
                        anyhow::anyhow!("--role: '{r}' is not one of ingest, read, operate, admin")
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let sources = (!sources.is_empty()).then(|| sources.clone());
            let text =
                crate::auth::create(store, name, roles, sources, config_names, Utc::now()).await?;
            eprintln!(
                "token '{name}' created. It is shown once, now; only its hash is kept. Send it as `Authorization: Bearer <token>`."
            );
            out!("{text}");
        }
        TokensCommand::List => {
            let tokens = store.list_tokens().await?;
            if tokens.is_empty() {
                out!("no stored tokens (tokens of the config file are not listed here)");
            }
            for t in tokens {
                let state = match t.revoked_at {
                    Some(at) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                    None => "active".into(),
                };
                let used = t.last_used_at.map_or_else(
                    || "never used".into(),
                    |at| format!("used {}", at.format("%Y-%m-%d %H:%M")),
                );
                let roles: Vec<&str> = t.roles.iter().map(|r| r.name()).collect();
                let sources = t
                    .sources
                    .map(|s| format!(" sources={}", s.join(",")))
                    .unwrap_or_default();
                out!(
                    "{:<24} {:<22} {:<24} {}{}",
                    t.name,
                    roles.join(","),
                    state,
                    used,
                    sources
                );
            }
        }
        TokensCommand::Revoke { name } => {
            if !store.revoke_token(name, Utc::now()).await? {
                bail!("no active stored token named '{name}' (see `signalbox tokens list`)");
            }
            out!("token '{name}' revoked: engines refuse it within 5 seconds");
        }
        TokensCommand::Generate => unreachable!("handled before the store is opened"),
    }
    Ok(())
}
