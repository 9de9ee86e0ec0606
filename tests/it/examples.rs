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

/// The README's "bad input" examples: each `curl ... -d '<body>'` followed by a line
/// `# <status> <answer>` gets exactly that answer from a running engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_error_examples_answer_as_shown() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    let db = crate::support::sqlite_db().await.unwrap();
    let app = crate::support::TestApp::spawn(crate::support::test_config(&db)).await;
    let mut checked = 0;
    for pair in lines.windows(2) {
        let (Some(request), Some(answer)) = (
            pair[0].strip_prefix("curl -X POST localhost:8080"),
            pair[1].strip_prefix("# "),
        ) else {
            continue;
        };
        let (path, body) = request.split_once(" -d '").expect("curl ... -d '<body>'");
        let body = body.strip_suffix('\'').expect("the body ends the line");
        let (status, expected) = answer.split_once(' ').unwrap();
        let (got_status, got) = app.post(path.trim(), body.to_owned()).await;
        assert_eq!(got_status.to_string(), status, "{}", pair[0]);
        let expected: serde_json::Value = serde_json::from_str(expected).unwrap();
        assert_eq!(got, expected, "README: {}", pair[1]);
        checked += 1;
    }
    assert!(checked > 0, "the README shows at least one error example");
    app.stop().await;
}
