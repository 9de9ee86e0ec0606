//! Provider adapters against the repaired examples of the platforms' docs: golden snapshots,
//! catalogue coverage, the events doc, and signed deliveries end to end over HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use chrono::{DateTime, Utc};
use signalbox::normalize::Event;
use signalbox::normalize::catalogue::Entry;
use signalbox::providers::{Inbound, PLATFORMS, Registry, catalogue};

pub(crate) struct Fixture {
    pub source: String,
    pub case: String,
    pub body: Vec<u8>,
    pub headers: HeaderMap,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/providers")
}

/// Every `tests/fixtures/providers/<source>/<case>.json`, with `<case>.headers.json` if present.
pub(crate) fn fixtures() -> Vec<Fixture> {
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

fn inbound(fixture: &Fixture) -> Inbound<'_> {
    Inbound {
        headers: &fixture.headers,
        body: &fixture.body,
        hint: None,
        received_at: received_at(),
    }
}

pub(crate) fn normalize(registry: &Registry, fixture: &Fixture) -> Event {
    let provider = registry
        .get(&fixture.source)
        .unwrap_or_else(|| panic!("no adapter for {}", fixture.source));
    let mut events = provider
        .parse(&inbound(fixture))
        .unwrap_or_else(|e| panic!("{}/{}: {e}", fixture.source, fixture.case));
    assert_eq!(events.len(), 1);
    events.remove(0)
}

/// The catalogue entry of a fixture's type, as its platform reads the type.
fn catalogue_entry(fixture: &Fixture) -> &'static Entry {
    let platform = signalbox::providers::platform(&fixture.source)
        .unwrap_or_else(|| panic!("{} is not a platform", fixture.source));
    let body = serde_json::from_slice(&fixture.body).unwrap();
    let normalized = (platform.normalize)(&body, &inbound(fixture))
        .unwrap_or_else(|e| panic!("{}/{}: {e}", fixture.source, fixture.case));
    let source_type = normalized.catalogue_type.unwrap_or_default();
    catalogue::lookup(platform.name, &source_type)
        .unwrap_or_else(|| panic!("{} {source_type} is not in the catalogue", platform.name))
}

fn catalogue_key(fixture: &Fixture) -> (String, String) {
    let entry = catalogue_entry(fixture);
    (entry.source.to_owned(), entry.source_type.to_owned())
}

#[test]
fn every_platform_has_fixtures_and_every_fixture_a_platform() {
    let fixtures = fixtures();
    for platform in PLATFORMS {
        assert!(
            fixtures.iter().any(|f| f.source == platform.name),
            "no fixtures in tests/fixtures/providers/{}/",
            platform.name
        );
    }
    for fixture in &fixtures {
        assert!(
            PLATFORMS.iter().any(|p| p.name == fixture.source),
            "tests/fixtures/providers/{}/ is no platform's",
            fixture.source
        );
    }
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
        .map(|f| {
            let event = normalize(&registry, f);
            assert_eq!(
                event.kind.as_str(),
                catalogue_entry(f).kind,
                "{}/{}",
                f.source,
                f.case
            );
            catalogue_key(f)
        })
        .collect();
    let all: BTreeSet<(String, String)> = catalogue::entries()
        .map(|e| (e.source.to_owned(), e.source_type.to_owned()))
        .collect();
    let missing: Vec<_> = all.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "catalogue entries without a fixture: {missing:?}"
    );
    // Each platform's count is checked against its docs in its module's tests.
    assert_eq!(all.len(), catalogue::entries().count(), "no entry twice");
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
        carried.insert(catalogue_key(&fixture), (refs, amount));
    }
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/events.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_default();
    let marker = "<!-- catalogue: generated by the test events_doc_matches_the_catalogue -->";
    let head = doc.split(marker).next().unwrap_or_default().trim_end();
    let mut table = format!("{head}\n\n{marker}\n");
    for platform in PLATFORMS {
        let source = platform.name;
        table.push_str(&format!("\n### {source}\n\n| canonical type | source type | meaning | subject | amount |\n|---|---|---|---|---|\n"));
        for entry in platform.catalogue {
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

mod never_panic {
    use std::collections::BTreeMap;

    use axum::http::{HeaderMap, HeaderValue};
    use proptest::prelude::*;
    use serde_json::Value;
    use signalbox::config::{Secret, SourceConfig};
    use signalbox::providers::{Inbound, PLATFORMS, Registry, Scheme};

    fn registries() -> Vec<Registry> {
        let unsigned = PLATFORMS.iter().map(|p| {
            (
                p.name.to_owned(),
                SourceConfig {
                    unsigned: true,
                    ..SourceConfig::default()
                },
            )
        });
        let signed = PLATFORMS.iter().map(|p| {
            let secret = match p.scheme {
                Scheme::Svix { .. } => "whsec_c2VjcmV0",
                _ => "secret",
            };
            (
                p.name.to_owned(),
                SourceConfig {
                    secrets: vec![Secret::new(secret.into())],
                    ..SourceConfig::default()
                },
            )
        });
        vec![
            Registry::from_config(&unsigned.collect::<BTreeMap<_, _>>()).unwrap(),
            Registry::from_config(&signed.collect::<BTreeMap<_, _>>()).unwrap(),
        ]
    }

    /// Every adapter, signed and unsigned, with and without a path hint, with signature-like headers.
    fn feed_everything(body: &[u8], hint: Option<&str>) {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("svix-id", "msg_1"),
            ("svix-timestamp", "1700000000"),
            ("svix-signature", "v1,AAAA"),
            ("x-webhook-signature", "00ff"),
            ("idempotencykey", "k"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        for registry in registries() {
            for name in registry.names().map(str::to_owned).collect::<Vec<_>>() {
                let provider = registry.get(&name).unwrap();
                for headers in [&headers, &HeaderMap::new()] {
                    let req = Inbound {
                        headers,
                        body,
                        hint,
                        received_at: chrono::Utc::now(),
                    };
                    let _ = provider.verify(&req);
                    let _ = provider.parse(&req);
                }
            }
        }
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
            prop::sample::select(vec![
                "payload",
                "details",
                "messageType",
                "event",
                "data",
                "v9.x",
                "2024-10-15"
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "payload",
                        "details",
                        "messageType",
                        "messageId",
                        "timestamp",
                        "amount",
                        "currency",
                        "event",
                        "data",
                        "type",
                        "eventType",
                        "customer",
                        "invoice",
                        "invoices",
                        "movements",
                        "relatedObject",
                        "id",
                        "signature",
                        "x"
                    ])
                    .prop_map(String::from),
                    inner,
                    0..6,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Every JSON pointer to a value inside `value`.
    fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => map
                .iter()
                .for_each(|(k, v)| pointers(v, format!("{at}/{k}"), out)),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out)),
            _ => {}
        }
        out.push(at);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512), hint in proptest::option::of("[a-z_]{0,20}")) {
            feed_everything(&body, hint.as_deref());
        }

        #[test]
        fn arbitrary_json(value in json()) {
            feed_everything(value.to_string().as_bytes(), None);
        }

        #[test]
        fn real_payloads_with_one_value_replaced(fixture in any::<prop::sample::Index>(), pick in any::<prop::sample::Index>(), replacement in json()) {
            let fixtures = super::fixtures();
            let mut value: Value = serde_json::from_slice(&fixture.get(&fixtures).body).unwrap();
            let mut all = Vec::new();
            pointers(&value, String::new(), &mut all);
            let pointer = pick.get(&all).clone();
            match value.pointer_mut(&pointer) {
                Some(slot) => *slot = replacement,
                None => value = replacement,
            }
            feed_everything(value.to_string().as_bytes(), None);
        }
    }
}

/// `providers::carried::CARRIED` is what the fixtures (the docs' examples) show: for each
/// canonical type, the subject references and amount present in every example of it.
#[test]
fn the_fields_each_type_carries_match_the_fixtures() {
    let registry = Registry::from_config(&Default::default()).unwrap();
    let mut carried: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for fixture in fixtures() {
        let event = normalize(&registry, &fixture);
        let mut fields: BTreeSet<String> = serde_json::to_value(&event.subject)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .map(|k| format!("subject.{k}"))
            .collect();
        if event.amount.is_some() {
            fields.insert("amount".into());
        }
        carried
            .entry(event.kind.as_str().to_owned())
            .and_modify(|known| known.retain(|f| fields.contains(f)))
            .or_insert(fields);
    }
    let table: Vec<(String, Vec<String>)> = carried
        .into_iter()
        .map(|(k, f)| (k, f.into_iter().collect()))
        .collect();
    let actual: Vec<(String, Vec<String>)> = signalbox::providers::carried::CARRIED
        .iter()
        .map(|(k, f)| (k.to_string(), f.iter().map(|s| s.to_string()).collect()))
        .collect();
    if actual != table {
        let mut text = String::from("pub const CARRIED: &[(&str, &[&str])] = &[\n");
        for (kind, fields) in &table {
            let fields: Vec<String> = fields.iter().map(|f| format!("\"{f}\"")).collect();
            text += &format!("    (\"{kind}\", &[{}]),\n", fields.join(", "));
        }
        text += "];\n";
        panic!("src/providers/carried.rs differs from the fixtures; it should read:\n{text}");
    }
}
