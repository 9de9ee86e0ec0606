//! `signalbox check`, `signalbox test` and `signalbox try`: tools for rule authors. None of them
//! stores, sends or changes anything.

use std::path::Path;

use anyhow::bail;

use crate::providers::Registry;
use crate::rules::evaluate::Outcome;
use crate::rules::{RuleSet, testing};

use super::{BacktestArgs, CheckArgs, TestArgs, TryArgs};

/// The rules of `dir`, with the calendars of the config `config` names (and the built-in ones).
pub(super) fn load(dir: &Path, config: &super::ConfigArgs) -> anyhow::Result<RuleSet> {
    let calendars = config.load(&[])?.calendars()?;
    // `--rules-dir` names the folder as well as the argument does.
    let dir = config.rules_dir.as_deref().unwrap_or(dir);
    if !dir.is_dir() {
        bail!("{}: no such rules folder", dir.display());
    }
    match RuleSet::load_dir_with(dir, &calendars) {
        Ok(set) => Ok(set),
        Err(errors) => {
            for e in &errors {
                out!("{e}");
            }
            bail!(
                "{} problem{} in {}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                dir.display()
            )
        }
    }
}

pub(super) fn check(args: CheckArgs) -> anyhow::Result<()> {
    let set = load(&args.dir, &args.config)?;
    let errors = crate::rules::optional::type_errors(&set);
    if !errors.is_empty() {
        for e in &errors {
            out!("{e}");
        }
        bail!(
            "{} problem{} in {}",
            errors.len(),
            plural(errors.len()),
            args.dir.display()
        );
    }
    let warnings = crate::rules::optional::warnings(&set);
    for w in &warnings {
        out!("{w}");
    }
    let tests: usize = set.rules().iter().map(|r| r.tests.len()).sum();
    let summary = format!(
        "{}: {} rules in {} files, {tests} inline tests",
        args.dir.display(),
        set.len(),
        set.files.len()
    );
    match warnings.len() {
        0 => out!("{summary}: no problems"),
        n if args.strict => bail!("{summary}: {n} warning{} (--strict)", plural(n)),
        n => out!(
            "{summary}: no errors, {n} warning{} (--strict fails on them)",
            plural(n)
        ),
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub(super) fn test(args: TestArgs) -> anyhow::Result<()> {
    let set = load(&args.dir, &args.config)?;
    let registry = Registry::from_config(&Default::default())?;
    let results = testing::run_all(&set, &registry);
    let mut failed = 0;
    for r in &results {
        match &r.failure {
            None => out!("PASS {} {} {}", r.file.display(), r.rule, r.name),
            Some(detail) => {
                failed += 1;
                out!("FAIL {} {} {}", r.file.display(), r.rule, r.name);
                for line in detail.lines() {
                    out!("     {line}");
                }
            }
        }
    }
    out!("{} passed, {failed} failed", results.len() - failed);
    if failed > 0 {
        bail!(
            "{failed} rule test{} failed",
            if failed == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// A `--sequence` file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Sequence {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    until: Option<String>,
    events: Vec<crate::rules::config::TimedEvent>,
}

/// `signalbox try --sequence FILE`: what fires when, on a virtual clock.
fn try_sequence(set: &RuleSet, registry: &Registry, file: &Path) -> anyhow::Result<()> {
    let path = std::env::current_dir()?.join(file);
    let text =
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let sequence: Sequence =
        serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let firings = testing::run_timed(
        set,
        None,
        &path,
        &sequence.events,
        sequence.from.as_deref(),
        sequence.until.as_deref(),
        registry,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    for firing in &firings {
        out!(
            "{}  FIRES {} for {}",
            firing.at.to_rfc3339(),
            firing.rule,
            firing.event
        );
        for action in &firing.actions {
            for line in serde_json::to_string_pretty(action)?.lines() {
                out!("         {line}");
            }
        }
    }
    out!(
        "\n{} firing(s) from {} event(s). Nothing was sent or stored.",
        firings.len(),
        sequence.events.len()
    );
    Ok(())
}

pub(super) fn try_event(args: TryArgs) -> anyhow::Result<()> {
    let set = load(&args.dir, &args.config)?;
    let registry = Registry::from_config(&Default::default())?;
    if let Some(file) = &args.sequence {
        return try_sequence(&set, &registry, file);
    }
    let now = match &args.now {
        Some(t) => crate::script::bindings::parse_time(t)
            .ok_or_else(|| anyhow::anyhow!("--now: '{t}' is not a time"))?,
        None => crate::clock::Clock::now(&crate::clock::SystemClock),
    };
    let mut facts = std::sync::Arc::default();
    let event = match (&args.event, &args.event_id) {
        (_, Some(id)) => {
            let (event, read) = stored_event(&args, id, &set, now)?;
            facts = read;
            event
        }
        (Some(file), None) => {
            let path = std::env::current_dir()?.join(file);
            match api_event(&path)? {
                Some(event) => event,
                None => testing::load_event(
                    &path,
                    &serde_json::Value::String(path.display().to_string()),
                    args.source.as_deref(),
                    &registry,
                    Some(now),
                )
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
            }
        }
        (None, None) => anyhow::bail!("give --event FILE or --event-id evt_..."),
    };
    out!(
        "event: {} from {} ({})",
        event.kind,
        event.source,
        event.source_type.as_deref().unwrap_or("no source type")
    );
    out!("  subject: {}", serde_json::to_string(&event.subject)?);
    if let Some(amount) = &event.amount {
        out!(
            "  amount:  {} {}",
            amount.value,
            amount.currency.as_deref().unwrap_or("")
        );
    }
    out!();
    let mut fired = 0;
    for evaluation in set.explain_with(&event, now, &facts) {
        match &evaluation.outcome {
            Outcome::Fired {
                actions, throttle, ..
            } => {
                fired += 1;
                out!("FIRES    {}", evaluation.rule_id);
                if let Some((key, window)) = throttle {
                    out!(
                        "         throttled per '{key}' for {}",
                        humantime::format_duration(*window)
                    );
                }
                for action in actions {
                    for line in serde_json::to_string_pretty(action)?.lines() {
                        out!("         {line}");
                    }
                }
            }
            Outcome::Waiting {
                subject,
                awaits,
                deadline,
            } => out!(
                "WAITS    {}: fires at {} unless {} about {subject} comes first",
                evaluation.rule_id,
                deadline.to_rfc3339(),
                awaits.join(" or ")
            ),
            Outcome::NotMatched { reason } => out!("no       {}: {reason}", evaluation.rule_id),
            Outcome::Skipped { reason } => out!(
                "skipped  {}: the script skipped: {reason}",
                evaluation.rule_id
            ),
            Outcome::Failed { error, line } => {
                out!(
                    "FAILED   {}: {error}{}",
                    evaluation.rule_id,
                    line.map(|l| format!(" (line {l})")).unwrap_or_default()
                )
            }
        }
        for log in &evaluation.logs {
            out!("         log: {log}");
        }
    }
    out!(
        "\n{fired} of {} rules would fire. Nothing was sent or stored.",
        set.len()
    );
    Ok(())
}

/// The stored event `id`, from the engine's store.
/// A stored event, with what `set`'s rules read about it from the store (its history,
/// follow-ups, state), as the engine reads them.
fn stored_event(
    args: &TryArgs,
    id: &str,
    set: &RuleSet,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<(
    crate::normalize::Event,
    std::sync::Arc<crate::rules::facts::Facts>,
)> {
    let config = args.config.load(&[])?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = crate::store::Store::open_existing(&config.database_url, &config.store).await?;
        let read = async {
            let Some(stored) = store.get_event(id).await? else {
                anyhow::bail!(
                    "no event with id '{id}' in {}",
                    crate::store::redact_url(&config.database_url)
                );
            };
            let facts = crate::rules::facts::gather(set, &[&stored.event], &store, now).await?;
            Ok((stored.event, std::sync::Arc::new(facts)))
        }
        .await;
        store.close().await;
        read
    })
}

/// The event in `path` if it is one as the API returns it (`GET /v1/events/{id}`: with its
/// `state`), else `None` (a canonical or platform body, read as such).
fn api_event(path: &std::path::Path) -> anyhow::Result<Option<crate::normalize::Event>> {
    let text = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(&text) else {
        return Ok(None);
    };
    if !map.contains_key("state") || !map.contains_key("id") {
        return Ok(None);
    }
    for key in ["state", "processed_at", "delivery_id", "failure"] {
        map.remove(key);
    }
    serde_json::from_value(serde_json::Value::Object(map))
        .map(Some)
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: not an event as the API returns it: {e}",
                path.display()
            )
        })
}

/// Progress on stderr: on a terminal, one line rewritten in place (at most every 1000 events);
/// else a line every [`PROGRESS_EVERY`] events.
struct Progress {
    terminal: bool,
    what: &'static str,
    shown: usize,
}

/// Events between two progress lines when stderr is not a terminal.
const PROGRESS_EVERY: usize = 100_000;

impl Progress {
    fn new(what: &'static str) -> Self {
        use std::io::IsTerminal as _;
        Self {
            terminal: std::io::stderr().is_terminal(),
            what,
            shown: 0,
        }
    }

    fn show(&mut self, done: usize, total: Option<usize>) {
        let step = if self.terminal { 1000 } else { PROGRESS_EVERY };
        // On a terminal, the line ends at the total.
        let last = self.terminal && total.is_some_and(|t| done == t && done != self.shown);
        if done < self.shown + step && !last {
            return;
        }
        self.shown = done;
        let of = total.map(|t| format!(" / {t}")).unwrap_or_default();
        if self.terminal {
            eprint!("\r{} {done}{of} events", self.what);
        } else {
            eprintln!("{} {done}{of} events", self.what);
        }
    }

    fn end(&self) {
        if self.terminal && self.shown > 0 {
            eprintln!();
        }
    }
}

pub(super) fn backtest(args: BacktestArgs) -> anyhow::Result<()> {
    let set = load(&args.dir, &args.config)?;
    let time = |what: &str, text: &str| {
        crate::script::bindings::parse_time(text)
            .ok_or_else(|| anyhow::anyhow!("--{what}: '{text}' is not a time (RFC 3339 or a date)"))
    };
    let from = time("from", &args.from)?;
    let to = match &args.to {
        Some(t) => time("to", t)?,
        None => crate::clock::Clock::now(&crate::clock::SystemClock),
    };
    if to <= from {
        bail!("--to must be after --from");
    }
    let config = args.config.load(&[])?;
    let runtime = tokio::runtime::Runtime::new()?;
    let started = std::time::Instant::now();
    let recorded = runtime.block_on(async {
        let store = crate::store::Store::open_existing(&config.database_url, &config.store).await?;
        let mut progress = Progress::new("read");
        let read = crate::rules::backtest::read(&store, &set, from, to, None, &mut |n| {
            progress.show(n, None)
        })
        .await;
        progress.end();
        store.close().await;
        anyhow::Ok(read?)
    })?;
    eprintln!(
        "read {} events in {:.1} s",
        recorded.events.len(),
        started.elapsed().as_secs_f64()
    );
    let started = std::time::Instant::now();
    let mut progress = Progress::new("ran");
    let report = crate::rules::backtest::backtest(&set, recorded, from, to, &mut |done, total| {
        progress.show(done, Some(total));
        true
    });
    progress.end();
    let report = report.map_err(|e| anyhow::anyhow!(e))?;
    eprintln!(
        "ran {} events in {:.1} s",
        report.events,
        started.elapsed().as_secs_f64()
    );
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    out!(
        "{} events from {} to {}; nothing was sent or stored.\n",
        report.events,
        from.to_rfc3339(),
        to.to_rfc3339()
    );
    out!(
        "{:<40}  {:>6}  {:>6}  {:>6}  DIFF",
        "RULE",
        "NOW",
        "THEN",
        "BOTH"
    );
    for r in &report.rules {
        let diff = if r.only_now.is_empty() && r.only_then.is_empty() {
            "same".to_owned()
        } else {
            format!("+{} now, -{} then", r.now - r.both, r.then - r.both)
        };
        out!(
            "{:<40}  {:>6}  {:>6}  {:>6}  {diff}",
            r.rule,
            r.now,
            r.then,
            r.both
        );
        for id in &r.only_now {
            out!("  + fires now, not then: {id}");
        }
        for id in &r.only_then {
            out!("  - fired then, not now: {id}");
        }
        if r.failed > 0 {
            out!(
                "  ! fails now for {} event(s), e.g. {}",
                r.failed,
                r.failed_events.join(", ")
            );
        }
    }
    Ok(())
}
