//! Provider adapters against the repaired examples of the platforms' docs: golden snapshots,
//! catalogue coverage, the events doc, and signed deliveries end to end over HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use chrono::{DateTime, Utc};
use signalbox::normalize::Event;
use signalbox::normalize::catalogue::{self, CATALOGUE};
use signalbox::normalize::fields::{strip_version_prefix, strip_version_suffix};
use signalbox::providers::{Inbound, Registry};

pub struct Fixture {
    pub source: String,
    pub case: String,
    pub body: Vec<u8>,
    pub headers: HeaderMap,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/providers")
}

/// Every `tests/fixtures/providers/<source>/<case>.json`, with `<case>.headers.json` if present.
pub fn fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    for source in std::fs::read_dir(fixtures_dir()).unwrap() {
        let source = source.unwrap().path();
        if !source.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&source).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let Some(case) = name
                .strip_suffix(".json")
                .filter(|c| !c.ends_with(".headers"))
            else {
                continue;
            };
            let mut headers = HeaderMap::new();
            let headers_path = source.join(format!("{case}.headers.json"));
            if headers_path.exists() {
                let map: BTreeMap<String, String> =
                    serde_json::from_slice(&std::fs::read(headers_path).unwrap()).unwrap();
                for (k, v) in map {
                    headers.insert(
                        HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
                        HeaderValue::from_str(&v).unwrap(),
                    );
                }
            }
            out.push(Fixture {
                source: source.file_name().unwrap().to_string_lossy().into_owned(),
                case: case.to_owned(),
                body: std::fs::read(&path).unwrap(),
                headers,
            });
        }
    }
    out.sort_by(|a, b| (&a.source, &a.case).cmp(&(&b.source, &b.case)));
    out
}

fn received_at() -> DateTime<Utc> {
    "2026-11-22T10:00:00Z".parse().unwrap()
}

pub fn normalize(registry: &Registry, fixture: &Fixture) -> Event {
    let provider = registry
        .get(&fixture.source)
        .unwrap_or_else(|| panic!("no adapter for {}", fixture.source));
    let inbound = Inbound {
        headers: &fixture.headers,
        body: &fixture.body,
        hint: None,
        received_at: received_at(),
    };
    let mut events = provider
        .parse(&inbound)
        .unwrap_or_else(|e| panic!("{}/{}: {e}", fixture.source, fixture.case));
    assert_eq!(events.len(), 1);
    events.remove(0)
}

fn catalogue_key(event: &Event) -> (String, String) {
    let source_type = event.source_type.clone().unwrap_or_default();
    let base = match event.source.as_str() {
        "hubpay" => strip_version_prefix(&source_type),
        "receeve" => strip_version_suffix(&source_type),
        _ => &source_type,
    };
    let entry = catalogue::lookup(&event.source, base)
        .or_else(|| catalogue::lookup(&event.source, &base.to_ascii_uppercase()))
        .unwrap_or_else(|| panic!("{} {source_type} is not in the catalogue", event.source));
    (entry.source.to_owned(), entry.source_type.to_owned())
}

#[test]
fn every_fixture_normalizes_to_its_snapshot() {
    let registry = Registry::from_config(&Default::default()).unwrap();
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for fixture in fixtures() {
            let event = normalize(&registry, &fixture);
            assert_ne!(event.kind.as_str(), "unknown", "{}/{}", fixture.source, fixture.case);
            let name = format!("{}__{}", fixture.source, fixture.case);
            insta::assert_json_snapshot!(name, event, { ".id" => "[id]", ".payload" => "[the fixture]" });
        }
    });
}

#[test]
fn every_catalogue_entry_has_a_fixture() {
    let registry = Registry::from_config(&Default::default()).unwrap();
    let covered: BTreeSet<(String, String)> = fixtures()
        .iter()
        .map(|f| catalogue_key(&normalize(&registry, f)))
        .collect();
    let all: BTreeSet<(String, String)> = CATALOGUE
        .iter()
        .map(|e| (e.source.to_owned(), e.source_type.to_owned()))
        .collect();
    let missing: Vec<_> = all.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "catalogue entries without a fixture: {missing:?}"
    );
    assert_eq!(all.len(), 102);
}

/// `docs/events.md` is the catalogue as rule authors read it: a table per source with what each
/// type carries (seen on its fixture). Regenerate with `SIGNALBOX_UPDATE_DOCS=1 cargo test`.
#[test]
fn events_doc_matches_the_catalogue() {
    let registry = Registry::from_config(&Default::default()).unwrap();
    let mut carried: BTreeMap<(String, String), (Vec<String>, String)> = BTreeMap::new();
    for fixture in fixtures() {
        let event = normalize(&registry, &fixture);
        let subject = serde_json::to_value(&event.subject).unwrap();
        let refs = subject.as_object().unwrap().keys().cloned().collect();
        let amount = match &event.amount {
            Some(a) => format!(
                "yes{}",
                a.currency
                    .as_ref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ),
            None => "no".into(),
        };
        carried.insert(catalogue_key(&event), (refs, amount));
    }
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/events.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_default();
    let marker = "<!-- catalogue: generated by the test events_doc_matches_the_catalogue -->";
    let head = doc.split(marker).next().unwrap_or_default().trim_end();
    let mut table = format!("{head}\n\n{marker}\n");
    for source in catalogue::sources() {
        table.push_str(&format!("\n### {source}\n\n| canonical type | source type | meaning | subject | amount |\n|---|---|---|---|---|\n"));
        for entry in CATALOGUE.iter().filter(|e| e.source == source) {
            let (refs, amount) = &carried[&(entry.source.to_owned(), entry.source_type.to_owned())];
            table.push_str(&format!(
                "| `{}` | `{}` | {} | {} | {} |\n",
                entry.kind,
                entry.source_type,
                entry.meaning,
                refs.join(", "),
                amount
            ));
        }
    }
    if std::env::var_os("SIGNALBOX_UPDATE_DOCS").is_some() {
        std::fs::write(&doc_path, &table).unwrap();
    } else {
        assert!(
            doc == table,
            "docs/events.md is out of date with the catalogue: run SIGNALBOX_UPDATE_DOCS=1 cargo test --test it events_doc"
        );
    }
}
