//! What ships in `examples/` works: the config loads and validates, the events are accepted.

use std::collections::HashMap;
use std::path::Path;

#[test]
fn example_config_loads_and_matches_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/signalbox.yaml");
    let config = signalbox::config::Config::load(Some(&path), &HashMap::new())
        .expect("example config loads");
    config.validate().expect("example config is valid");
    let defaults = signalbox::config::Config::default();
    assert_eq!(
        format!("{config:?}"),
        format!("{defaults:?}"),
        "the example documents the defaults"
    );
}

#[test]
fn example_events_are_valid_canonical_events() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/events");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let body = std::fs::read(&path).unwrap();
        signalbox::normalize::canonical::parse_body(&body, chrono::Utc::now())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        count += 1;
    }
    assert!(count > 0);
}
