//! `signalbox evaluations`: what rules did across events, failures first: each with its rule,
//! event, time, the line in the rule file and the error; and per rule, its failures today.

use anyhow::{Context, anyhow};
use chrono::{Duration, Utc};

use super::EvaluationsArgs;
use crate::store::{EvaluationFilter, EvaluationOutcome, Store};

pub(super) fn run(args: EvaluationsArgs) -> anyhow::Result<()> {
    let config = args.config.load(&[])?;
    let since = args
        .since
        .as_deref()
        .map(|t| {
            crate::script::bindings::parse_time(t).ok_or_else(|| {
                anyhow!("--since: '{t}' is not a time (RFC 3339, or a date such as 2026-11-20)")
            })
        })
        .transpose()?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = Store::open_existing(&config.database_url, &config.store).await?;
        let result = list(&store, &args, since).await;
        store.close().await;
        result
    })
}

async fn list(
    store: &Store,
    args: &EvaluationsArgs,
    since: Option<chrono::DateTime<Utc>>,
) -> anyhow::Result<()> {
    let filter = EvaluationFilter {
        outcome: Some(args.outcome),
        rule: args.rule.clone(),
        since,
        before: None,
        limit: args.limit.clamp(1, 1000),
    };
    let records = store.list_evaluations(&filter, usize::MAX).await?.items;
    out!(
        "{:<32}  {:<36}  {:<20}  {:<9}  {:<5}  ERROR",
        "RULE",
        "EVENT",
        "AT",
        "OUTCOME",
        "LINE"
    );
    for r in &records {
        out!(
            "{:<32}  {:<36}  {:<20}  {:<9}  {:<5}  {}",
            r.rule_id,
            r.event_id,
            r.evaluated_at.format("%Y-%m-%d %H:%M:%S"),
            r.outcome,
            r.error_line.map(|l| l.to_string()).unwrap_or_default(),
            r.error.as_deref().unwrap_or_default().replace('\n', " ")
        );
    }
    out!("\n{} shown", records.len());
    if args.outcome == EvaluationOutcome::Failed {
        let failing = store
            .failures_by_rule(
                crate::clock::Clock::now(&crate::clock::SystemClock) - Duration::days(1),
            )
            .await?;
        if !failing.is_empty() {
            out!("failed in the last 24 hours:");
            for f in failing {
                out!(
                    "  {:<32}  {:>6}  last at {}",
                    f.rule_id,
                    f.failed,
                    f.last_failed_at.format("%Y-%m-%d %H:%M:%S")
                );
            }
        }
    }
    Ok(())
}
