//! `signalbox check`, `signalbox test` and `signalbox try`: tools for rule authors. None of them
//! stores, sends or changes anything.

use std::path::Path;

use anyhow::bail;

use crate::providers::Registry;
use crate::rules::evaluate::Outcome;
use crate::rules::{RuleSet, testing};

use super::{CheckArgs, TestArgs, TryArgs};

fn load(dir: &Path) -> anyhow::Result<RuleSet> {
    match RuleSet::load_dir(dir) {
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
    let set = load(&args.dir)?;
    let tests: usize = set.rules().iter().map(|r| r.tests.len()).sum();
    out!(
        "{}: {} rules in {} files, {tests} inline tests: no problems",
        args.dir.display(),
        set.len(),
        set.files.len()
    );
    Ok(())
}

pub(super) fn test(args: TestArgs) -> anyhow::Result<()> {
    let set = load(&args.dir)?;
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

pub(super) fn try_event(args: TryArgs) -> anyhow::Result<()> {
    let set = load(&args.dir)?;
    let registry = Registry::from_config(&Default::default())?;
    let now = match &args.now {
        Some(t) => crate::script::bindings::parse_time(t)
            .ok_or_else(|| anyhow::anyhow!("--now: '{t}' is not a time"))?,
        None => crate::clock::Clock::now(&crate::clock::SystemClock),
    };
    let path = std::env::current_dir()?.join(&args.event);
    let event = testing::load_event(
        &path,
        &serde_json::Value::String(path.display().to_string()),
        args.source.as_deref(),
        &registry,
        Some(now),
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", args.event.display()))?;
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
    for evaluation in set.explain(&event, now) {
        match &evaluation.outcome {
            Outcome::Fired { actions, throttle } => {
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
