// Shared by the rule and template targets (included, not a target itself).

use std::collections::BTreeMap;
use std::path::PathBuf;

use signalbox::normalize::Event;
use signalbox::rules::RuleSet;

/// Compiles `text` as one rule file and, if it compiles, evaluates it against a sample event.
pub fn compile_and_run(text: &str) {
    let files = BTreeMap::from([(PathBuf::from("fuzz.yaml"), text.to_owned())]);
    let Ok(rules) = RuleSet::compile(&files) else {
        return;
    };
    let event: Event = serde_json::from_value(serde_json::json!({
        "id": "evt_1", "source": "receeve", "source_event_id": "m-1", "type": "claim.created",
        "occurred_at": "2026-11-20T08:00:00Z", "received_at": "2026-11-20T08:00:01Z",
        "subject": {"claim": "C-1", "account": "A-1"},
        "amount": {"value": "192.38", "currency": "EUR"},
        "data": {"dueDate": "2026-11-10", "notes": ["a", "b"], "n": 3}, "payload": {}
    }))
    .expect("the sample event is valid");
    let now = "2026-11-22T12:00:00Z".parse().expect("a time");
    let _ = rules.evaluate(&event, now);
}
