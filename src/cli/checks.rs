//! `signalbox checks`: the checks of `unless:` rules, and cancelling a pending one;
//! `signalbox timeline`: what happened to one claim (account, debtor).

use anyhow::{Context, bail};

use super::{ChecksArgs, ChecksCommand, TimelineArgs};
use crate::clock::Clock;
use crate::store::{CheckStatus, Store};

pub(super) fn run(args: ChecksArgs) -> anyhow::Result<()> {
    let config = args.config.load(&[])?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = Store::open_existing(&config.database_url, &config.store).await?;
        let result = match args.command {
            None => list(&store, args.status, args.rule.as_deref(), args.limit).await,
            Some(ChecksCommand::Cancel { id }) => cancel(&store, &id).await,
        };
        store.close().await;
        result
    })
}

async fn list(
    store: &Store,
    status: Option<CheckStatus>,
    rule: Option<&str>,
    limit: u32,
) -> anyhow::Result<()> {
    let checks = store.list_checks(status, rule, limit).await?;
    out!(
        "{:<36}  {:<9}  {:<20}  {:<32}  {:<24}  AWAITS",
        "CHECK",
        "STATUS",
        "DEADLINE",
        "RULE",
        "SUBJECT"
    );
    for c in &checks {
        out!(
            "{:<36}  {:<9}  {:<20}  {:<32}  {:<24}  {}{}",
            c.id,
            c.status,
            c.deadline.format("%Y-%m-%d %H:%M:%S"),
            c.rule_id,
            c.subject_ref,
            c.awaits.join(", "),
            c.resolved_by
                .as_deref()
                .map(|by| format!(" ({by})"))
                .unwrap_or_default()
        );
    }
    out!("\n{} shown", checks.len());
    Ok(())
}

async fn cancel(store: &Store, id: &str) -> anyhow::Result<()> {
    let Some(check) = store.get_check(id).await? else {
        bail!("no check with id '{id}'");
    };
    let now = crate::clock::SystemClock.now();
    if store
        .resolve_checks(
            &[id],
            CheckStatus::Cancelled,
            "cancelled from the command line",
            now,
        )
        .await?
        == 0
    {
        bail!("{id} is {}, not pending: nothing to cancel", check.status);
    }
    out!(
        "{id}: cancelled; rule {} will not fire for it",
        check.rule_id
    );
    Ok(())
}

pub(super) fn timeline(args: TimelineArgs) -> anyhow::Result<()> {
    if !crate::store::HISTORY_KEYS.contains(&args.key.as_str()) {
        bail!(
            "'{}' is not a subject with a timeline: use {}",
            args.key,
            crate::store::HISTORY_KEYS.join(", ")
        );
    }
    let config = args.config.load(&[])?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = Store::open_existing(&config.database_url, &config.store).await?;
        let entries = crate::api::timeline::timeline(
            &store,
            &args.key,
            &args.value,
            args.limit.clamp(1, 200),
            None,
        )
        .await;
        store.close().await;
        let entries = entries?.entries;
        if args.json {
            out!("{}", serde_json::to_string_pretty(&entries)?);
            return Ok(());
        }
        for e in &entries {
            out!(
                "{}  {:<10}  {:<32}  {}  ({})",
                e.at.format("%Y-%m-%d %H:%M:%S"),
                e.kind,
                e.rule_id.as_deref().unwrap_or(""),
                e.summary,
                e.event_id
            );
        }
        out!(
            "\n{} entries for {}:{}",
            entries.len(),
            args.key,
            args.value
        );
        Ok(())
    })
}
