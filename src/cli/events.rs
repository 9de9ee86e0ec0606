//! `signalbox events`: the event catalogue, for rule authors.

use crate::normalize::catalogue::Entry;
use crate::providers::catalogue;

use super::EventsArgs;

pub(super) fn run(args: EventsArgs) -> anyhow::Result<()> {
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
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let width = |f: fn(&&Entry) -> usize| entries.iter().map(f).max().unwrap_or(0);
    let (kind_w, source_w, type_w) = (
        width(|e| e.kind.len()).max(4),
        width(|e| e.source.len()).max(6),
        width(|e| e.source_type.len()).max(11),
    );
    println!(
        "{:kind_w$}  {:source_w$}  {:type_w$}  MEANING",
        "TYPE", "SOURCE", "SOURCE TYPE"
    );
    for e in &entries {
        println!(
            "{:kind_w$}  {:source_w$}  {:type_w$}  {}",
            e.kind, e.source, e.source_type, e.meaning
        );
    }
    println!(
        "\n{} source types. Types not listed are stored as 'unknown' with their source_type kept.",
        entries.len()
    );
    Ok(())
}
