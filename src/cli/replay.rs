//! `signalbox replay`: stored events evaluated again against the rules folder, on the store
//! (see [`crate::replay`]); dry by default, `--apply` to plan. A range is taken a page at a
//! time until its end; a running engine delivers what an applied replay planned.

use std::io::Write as _;

use anyhow::{Context, bail};

use super::ReplayArgs;
use crate::replay::{Decision, MAX_EVENTS, Options, Report, Selection};
use crate::store::{ReplayRange, Store};

/// Events listed in detail at most; the counts cover every event.
const MAX_LISTED: usize = 1000;

pub(super) fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let config = args.config.load(&[])?;
    let dir = args.dir.clone().unwrap_or_else(|| config.rules_dir.clone());
    let rules = std::sync::Arc::new(super::rules::load(&dir, &args.config)?);
    let time = |what: &str, text: &str| {
        crate::script::bindings::parse_time(text)
            .ok_or_else(|| anyhow::anyhow!("--{what}: '{text}' is not a time (RFC 3339 or a date)"))
    };
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    let mut selection = match (&args.event_id, &args.from) {
        (Some(id), _) => Selection::Event(id.clone()),
        (None, Some(from)) => {
            let from = time("from", from)?;
            let to = match &args.to {
                Some(t) => time("to", t)?,
                None => now,
            };
            if to <= from {
                bail!("--to must be after --from");
            }
            Selection::Range {
                range: ReplayRange {
                    from,
                    to,
                    kind: args.kind.clone(),
                    source: args.source.clone(),
                },
                after: None,
            }
        }
        (None, None) => bail!("give --event-id ID, or --from TIME [--to TIME]"),
    };
    let options = Options {
        dry_run: !args.apply,
        limit: MAX_EVENTS,
        max_listed_bytes: usize::MAX,
        now,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        let store = Store::open_existing(&config.database_url, &config.store).await?;
        let result = async {
            let mut total: Option<Report> = None;
            loop {
                let page = crate::replay::replay(&store, &rules, &selection, &options).await?;
                let next = page.next_after.clone();
                let so_far = absorb(&mut total, page);
                let _ = write!(std::io::stderr(), "\rreplayed {so_far} events");
                match (next, &mut selection) {
                    (Some(id), Selection::Range { after, .. }) => *after = Some(id),
                    _ => break,
                }
            }
            let _ = writeln!(std::io::stderr());
            anyhow::Ok(total.expect("one page at least"))
        }
        .await;
        store.close().await;
        result
    })?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print(&report)
}

/// Adds a page to the report so far; returns the events replayed so far.
fn absorb(total: &mut Option<Report>, page: Report) -> u64 {
    let Some(sum) = total else {
        let mut page = page;
        if page.listed.len() > MAX_LISTED {
            page.listed.truncate(MAX_LISTED);
            page.listed_all = false;
        }
        let events = page.events;
        *total = Some(page);
        return events;
    };
    sum.events += page.events;
    let (t, p) = (&mut sum.totals, &page.totals);
    t.fired += p.fired;
    t.actions += p.actions;
    t.already_recorded += p.already_recorded;
    t.throttled += p.throttled;
    t.not_armed += p.not_armed;
    t.failed += p.failed;
    let room = MAX_LISTED.saturating_sub(sum.listed.len());
    sum.listed_all &= page.listed_all && page.listed.len() <= room;
    sum.listed.extend(page.listed.into_iter().take(room));
    sum.next_after = page.next_after;
    sum.events
}

fn print(report: &Report) -> anyhow::Result<()> {
    for event in &report.listed {
        out!(
            "{}  {}  evaluated at {}",
            event.event_id,
            event.kind,
            event.evaluated_at.to_rfc3339()
        );
        if let Some(error) = &event.error {
            out!("  error: {error}");
        }
        for rule in &event.rules {
            let what = match rule.decision {
                Decision::WouldPlan => format!(
                    "fires now: would plan {} action{}",
                    count(&rule.actions),
                    if count(&rule.actions) == 1 { "" } else { "s" }
                ),
                Decision::Planned => format!(
                    "fires now: planned {} action{}",
                    rule.planned.unwrap_or(0),
                    if rule.planned == Some(1) { "" } else { "s" }
                ),
                Decision::AlreadyRecorded => format!(
                    "fires now; already recorded ({}): nothing new",
                    rule.then.map_or("?", |t| t.as_str())
                ),
                Decision::Throttled => "fires now, but its throttle is closed".to_owned(),
                Decision::NotArmed => "waits now: a replay arms no check".to_owned(),
                Decision::Failed => format!("failed: {}", rule.error.as_deref().unwrap_or("")),
            };
            out!("  {:<32}  {what}", rule.rule_id);
        }
    }
    if !report.listed_all {
        out!(
            "(the first {} events with something to say are listed)",
            report.listed.len()
        );
    }
    let t = &report.totals;
    let verb = if report.dry_run {
        "would plan"
    } else {
        "planned"
    };
    out!(
        "\n{} events replayed: {} firings, {verb} {} actions; {} already recorded, {} throttled, {} waiting (not armed), {} failed",
        report.events,
        t.fired,
        t.actions,
        t.already_recorded,
        t.throttled,
        t.not_armed,
        t.failed
    );
    if report.dry_run {
        out!("a dry run: nothing was stored or sent; --apply to plan");
    } else {
        out!("a running engine delivers the planned actions");
    }
    Ok(())
}

fn count(actions: &serde_json::Value) -> usize {
    actions.as_array().map_or(0, Vec::len)
}
