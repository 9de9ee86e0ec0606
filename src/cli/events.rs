//! `signalbox events`: the event catalogue, for rule authors; stored events by state, and
//! putting failed ones back, for operators.

use anyhow::{Context, bail};

use crate::normalize::catalogue::Entry;
use crate::providers::catalogue;
use crate::store::{EventFilter, EventState, Store, StoredEvent};

use super::{EventsArgs, EventsCommand};

pub(super) fn run(args: EventsArgs) -> anyhow::Result<()> {
    let stored_filter = args.state.is_some()
        || args.claim.is_some()
        || args.account.is_some()
        || args.debtor.is_some()
        || args.kind.is_some()
        || args.from.is_some()
        || args.to.is_some();
    if stored_filter || args.command.is_some() {
        return stored(args);
    }
    print_catalogue(args)
}

/// Stored events in one state, or `retry`.
fn stored(args: EventsArgs) -> anyhow::Result<()> {
    let config = args.config.load(&[])?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = Store::open_existing(&config.database_url, &config.store).await?;
        let result = match args.command {
            Some(EventsCommand::Retry { ids, all }) => retry(&store, &ids, all).await,
            None => list(&store, &args).await,
        };
        store.close().await;
        result
    })
}

async fn list(store: &Store, args: &EventsArgs) -> anyhow::Result<()> {
    let subject = [
        ("claim", &args.claim),
        ("account", &args.account),
        ("debtor", &args.debtor),
    ]
    .into_iter()
    .find_map(|(key, value)| value.clone().map(|v| (key.to_owned(), v)));
    let filter = EventFilter {
        kind: args.kind.clone(),
        source: args.source.clone(),
        state: args.state,
        subject,
        from: args.from,
        to: args.to,
        before: None,
        limit: args.limit.clamp(1, 1000),
        // An operator's own terminal: the count alone bounds it (lists carry no payloads).
        max_bytes: usize::MAX,
    };
    let events = store.list_events(&filter).await?.items;
    if args.json {
        let listed: Vec<_> = events.iter().map(StoredEvent::listed).collect();
        out!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(());
    }
    out!(
        "{:<36}  {:<9}  {:<28}  {:<8}  {:<8}  ERROR",
        "EVENT",
        "STATE",
        "TYPE",
        "SOURCE",
        "ATTEMPTS"
    );
    for e in &events {
        let (attempts, error) = e
            .failure
            .as_ref()
            .map(|f| (f.attempts.to_string(), f.error.as_str()))
            .unwrap_or_default();
        out!(
            "{:<36}  {:<9}  {:<28}  {:<8}  {:<8}  {}",
            e.event.id.as_str(),
            e.state,
            e.event.kind.as_str(),
            e.event.source,
            attempts,
            error
        );
    }
    out!("\n{} shown", events.len());
    if args.state == Some(EventState::Failed) && !events.is_empty() {
        out!("put them back with: signalbox events retry ID... (or --all)");
    }
    Ok(())
}

async fn retry(store: &Store, ids: &[String], all: bool) -> anyhow::Result<()> {
    if ids.is_empty() && !all {
        bail!("give the ids of failed events, or --all to retry every failed event");
    }
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let n = store.retry_events(&ids).await?;
    out!("{n} failed event(s) put back to be processed");
    if n < ids.len() as u64 {
        out!("(the others are not failed events)");
    }
    Ok(())
}

fn print_catalogue(args: EventsArgs) -> anyhow::Result<()> {
    let entries: Vec<_> = catalogue::entries()
        .filter(|e| args.source.as_deref().is_none_or(|s| s == e.source))
        .collect();
    if entries.is_empty() {
        anyhow::bail!("no events for source '{}'", args.source.unwrap_or_default());
    }
    if args.json {
        let rows: Vec<_> = entries
            .iter()
            .map(|e| serde_json::json!({"type": e.kind, "source": e.source, "source_type": e.source_type, "meaning": e.meaning}))
            .collect();
        out!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let width = |f: fn(&&Entry) -> usize| entries.iter().map(f).max().unwrap_or(0);
    let (kind_w, source_w, type_w) = (
        width(|e| e.kind.len()).max(4),
        width(|e| e.source.len()).max(6),
        width(|e| e.source_type.len()).max(11),
    );
    out!(
        "{:kind_w$}  {:source_w$}  {:type_w$}  MEANING",
        "TYPE",
        "SOURCE",
        "SOURCE TYPE"
    );
    for e in &entries {
        out!(
            "{:kind_w$}  {:source_w$}  {:type_w$}  {}",
            e.kind,
            e.source,
            e.source_type,
            e.meaning
        );
    }
    out!(
        "\n{} source types. Types not listed are stored as 'unknown' with their source_type kept.",
        entries.len()
    );
    Ok(())
}
