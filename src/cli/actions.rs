//! `signalbox actions`: list actions by status, rule, event or target; show one with its
//! parameters and attempts; put dead ones back; cancel a pending one.

use anyhow::{Context, bail};

use super::{ActionsArgs, ActionsCommand};
use crate::store::{ActionFilter, ActionStatus, MAX_RETRY, RetryFilter, Store};

pub(super) fn run(args: ActionsArgs) -> anyhow::Result<()> {
    let config = args.config.load(&[])?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = Store::open_existing(&config.database_url, &config.store).await?;
        let filter = ActionFilter {
            status: args.status,
            rule: args.rule,
            event: args.event,
            kind: None,
            target: args.target,
            before: args.before,
            limit: args.limit.clamp(1, 1000),
            max_bytes: usize::MAX,
        };
        let result = match args.command {
            None => list(&store, &filter).await,
            Some(ActionsCommand::Show { id }) => show(&store, &id).await,
            Some(ActionsCommand::Retry {
                id: Some(id),
                cancelled,
                ..
            }) => retry_one(&store, &id, cancelled).await,
            Some(ActionsCommand::Retry {
                id: None,
                dead,
                rule,
                event,
                ..
            }) => retry_dead(&store, dead, rule, event).await,
            Some(ActionsCommand::Cancel { id }) => cancel(&store, &id).await,
        };
        store.close().await;
        result
    })
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

async fn list(store: &Store, filter: &ActionFilter) -> anyhow::Result<()> {
    let page = store.find_actions(filter).await?;
    out!(
        "{:<36}  {:<10}  {:<16}  {:<8}  {:<32}  {:<36}  {:<20}  LAST ERROR",
        "ACTION",
        "STATUS",
        "KIND",
        "ATTEMPTS",
        "RULE",
        "EVENT",
        "NEXT ATTEMPT"
    );
    for a in &page.items {
        out!(
            "{:<36}  {:<10}  {:<16}  {:<8}  {:<32}  {:<36}  {:<20}  {}",
            a.id,
            a.status,
            a.kind,
            a.attempts,
            a.rule_id,
            a.event_id,
            time(a.next_attempt_at),
            a.last_error.as_deref().unwrap_or("")
        );
    }
    let (open, delivered, dead) = store.count_actions().await?;
    out!(
        "\n{} shown; in the store: {open} pending, {delivered} delivered, {dead} dead",
        page.items.len()
    );
    if let (true, Some(last)) = (page.more, page.items.last()) {
        out!("more follow: --before {}", last.id);
    }
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
    let Some(detail) = store.action_detail(id).await? else {
        bail!("no action with id '{id}'");
    };
    let a = &detail.summary;
    out!("action        {} (its Idempotency-Key)", a.id);
    out!("status        {}", a.status);
    out!("kind          {}", a.kind);
    out!("target        {}", a.target);
    out!(
        "rule          {} (action {})",
        a.rule_id,
        detail.action_index
    );
    out!("event         {}", a.event_id);
    out!("planned       {}", time(Some(detail.created_at)));
    if a.status == ActionStatus::Pending {
        out!("next attempt  {}", time(a.next_attempt_at));
    }
    if let Some(error) = &a.last_error {
        out!("last error    {error}");
    }
    if let Some(cancel) = &detail.cancel_on {
        let types = if cancel.types.is_empty() {
            "any type".to_owned()
        } else {
            cancel.types.join(", ")
        };
        out!(
            "cancelled by  a later event about {} ({types})",
            cancel.subject
        );
    }
    out!(
        "parameters    {}",
        serde_json::to_string_pretty(&detail.payload["action"])?.replace('\n', "\n              ")
    );
    let attempts = store.attempts(id).await?;
    if attempts.is_empty() {
        out!("no attempts yet");
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

async fn retry_one(store: &Store, id: &str, cancelled: bool) -> anyhow::Result<()> {
    let Some(action) = store.get_action(id).await? else {
        bail!("no action with id '{id}'");
    };
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    if store.retry_action(id, cancelled, now).await? {
        out!("1 action put back; a running engine delivers it now, with the same idempotency key");
        return Ok(());
    }
    match action.status {
        ActionStatus::Cancelled => bail!(
            "{id} was cancelled ({}): add --cancelled to run it anyway",
            action.last_error.as_deref().unwrap_or("no reason recorded")
        ),
        status => {
            bail!("nothing to retry: {id} is {status}; only a dead or pending action is retried")
        }
    }
}

async fn retry_dead(
    store: &Store,
    dead: bool,
    rule: Option<String>,
    event: Option<String>,
) -> anyhow::Result<()> {
    if !dead && rule.is_none() && event.is_none() {
        bail!("give an action id, or --dead (with --rule RULE or --event EVENT to narrow it down)");
    }
    let what = match (&rule, &event) {
        (Some(r), _) => format!("rule {r} has no dead actions"),
        (None, Some(e)) => format!("event {e} has no dead actions"),
        (None, None) => "no action is dead".to_owned(),
    };
    let filter = RetryFilter {
        rule,
        event,
        limit: MAX_RETRY,
        ..RetryFilter::default()
    };
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    let retried = store.retry_dead_actions(&filter, now).await?;
    let count = retried.ids.len();
    if count == 0 {
        bail!("nothing to retry: {what}");
    }
    out!(
        "{count} action{} put back; a running engine delivers {} now",
        if count == 1 { "" } else { "s" },
        if count == 1 { "it" } else { "them" }
    );
    if retried.more {
        out!("more dead actions match: run the command again for the next {MAX_RETRY}");
    }
    Ok(())
}
