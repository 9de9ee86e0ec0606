//! `signalbox actions`: list actions by state, show one's attempts, put dead ones back.

use anyhow::{Context, bail};

use super::{ActionsArgs, ActionsCommand};
use crate::store::{ActionStatus, Store};

pub(super) fn run(args: ActionsArgs) -> anyhow::Result<()> {
    let config = args.config.load(&[])?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = Store::open_existing(&config.database_url, &config.store).await?;
        let result = match args.command {
            None => list(&store, args.status, args.rule.as_deref(), args.limit).await,
            Some(ActionsCommand::Show { id }) => show(&store, &id).await,
            Some(ActionsCommand::Retry { id, rule }) => {
                retry(&store, id.as_deref(), rule.as_deref()).await
            }
            Some(ActionsCommand::Cancel { id }) => cancel(&store, &id).await,
        };
        store.close().await;
        result
    })
}

async fn list(
    store: &Store,
    status: Option<ActionStatus>,
    rule: Option<&str>,
    limit: u32,
) -> anyhow::Result<()> {
    let actions = store.list_actions(status, rule, limit).await?;
    out!(
        "{:<36}  {:<10}  {:<16}  {:<8}  {:<32}  {:<20}  LAST ERROR",
        "ACTION",
        "STATUS",
        "KIND",
        "ATTEMPTS",
        "RULE",
        "NEXT ATTEMPT"
    );
    for a in &actions {
        out!(
            "{:<36}  {:<10}  {:<16}  {:<8}  {:<32}  {:<20}  {}",
            a.id,
            a.status,
            a.kind,
            a.attempts,
            a.rule_id,
            a.next_attempt_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            a.last_error.as_deref().unwrap_or("")
        );
    }
    let (open, delivered, dead) = store.count_actions().await?;
    out!(
        "\n{} shown; in the store: {open} pending, {delivered} delivered, {dead} dead",
        actions.len()
    );
    Ok(())
}

async fn cancel(store: &Store, id: &str) -> anyhow::Result<()> {
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    if store
        .cancel_actions(&[id], "cancelled from the command line", now)
        .await?
        == 1
    {
        out!("{id}: cancelled; it will not run");
        return Ok(());
    }
    match store.get_action(id).await? {
        Some(action) => bail!(
            "{id} is {}, not pending: only a pending action can be cancelled",
            action.status
        ),
        None => bail!("no action with id '{id}'"),
    }
}

async fn show(store: &Store, id: &str) -> anyhow::Result<()> {
    let attempts = store.attempts(id).await?;
    if attempts.is_empty() {
        out!("{id}: no attempts yet");
    }
    for a in attempts {
        let status = a
            .status_code
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into());
        out!(
            "#{} {} {} ms  {}  status {status}  by {}  {}",
            a.attempt,
            a.started_at,
            a.duration_ms,
            a.outcome,
            a.instance,
            a.error.or(a.reply).unwrap_or_default()
        );
    }
    Ok(())
}

async fn retry(store: &Store, id: Option<&str>, rule: Option<&str>) -> anyhow::Result<()> {
    if id.is_none() == rule.is_none() {
        bail!("give an action id, or --rule RULE to retry every dead action of a rule");
    }
    let count = store
        .retry_actions(
            id,
            rule,
            crate::clock::Clock::now(&crate::clock::SystemClock),
        )
        .await?;
    if count == 0 {
        bail!(
            "nothing to retry: {}",
            id.map_or_else(
                || format!("rule {} has no dead actions", rule.unwrap_or_default()),
                |i| format!("no dead or pending action {i}")
            )
        );
    }
    out!(
        "{count} action{} put back; a running engine delivers {} now",
        if count == 1 { "" } else { "s" },
        if count == 1 { "it" } else { "them" }
    );
    Ok(())
}
