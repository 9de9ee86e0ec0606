//! Stored action payloads of every version ever written still decode: the fixtures in
//! `tests/fixtures/outbox/v<N>/` are payloads as engines of that version stored them.

use std::path::Path;

use serde_json::Value;
use signalbox::actions::{KINDS, Payload};

#[test]
fn every_stored_payload_fixture_decodes_to_its_kind() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/outbox");
    let mut kinds_seen = std::collections::BTreeSet::new();
    let mut files = 0;
    for version in std::fs::read_dir(&root).unwrap() {
        for file in std::fs::read_dir(version.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let stored: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let action =
                Payload::decode(&stored).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path.file_stem().unwrap().to_str().unwrap();
            assert!(
                name.starts_with(action.kind()),
                "{}: decoded as {}",
                path.display(),
                action.kind()
            );
            assert_eq!(
                stored["action"]["type"],
                action.kind(),
                "{}",
                path.display()
            );
            if stored["version"] == "1" {
                // Version 1 is also what is written today: writing it again gives the same JSON.
                assert_eq!(
                    serde_json::to_value(Payload::current(action.clone())).unwrap(),
                    stored,
                    "{}",
                    path.display()
                );
            }
            kinds_seen.insert(action.kind());
            files += 1;
        }
    }
    assert!(files > 0, "no fixtures under {}", root.display());
    for kind in KINDS {
        assert!(
            kinds_seen.contains(kind),
            "no stored payload fixture of kind {kind}"
        );
    }
}

#[test]
fn an_unreadable_payload_is_a_reason_not_a_panic() {
    let broken = serde_json::json!({"version": "1", "action": {"type": "fax", "to": "+49"}});
    let reason = Payload::decode(&broken).unwrap_err();
    assert!(
        reason.starts_with("stored action is unreadable: "),
        "{reason}"
    );
    let future = serde_json::json!({"version": "9", "action": {}});
    assert!(Payload::decode(&future).is_err());
}
