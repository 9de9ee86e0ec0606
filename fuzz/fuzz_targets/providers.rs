//! Every provider adapter (and the canonical one) given an arbitrary body, hint and signature
//! headers: it verifies or refuses, parses or refuses, and what it parses is storable or
//! refused with a reason. Never a panic.
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use signalbox::config::Secret;
use signalbox::providers::{Inbound, PLATFORMS, Registry, SourceConfig};

/// Unsigned adapters (the parse path) and signed ones (the verify path).
static REGISTRIES: LazyLock<(Registry, Registry)> = LazyLock::new(|| {
    let unsigned = PLATFORMS
        .iter()
        .map(|p| {
            let config = SourceConfig {
                unsigned: true,
                ..SourceConfig::default()
            };
            (p.name.to_owned(), config)
        })
        .collect::<BTreeMap<_, _>>();
    let signed = PLATFORMS
        .iter()
        .map(|p| {
            let secret = if p.name == "bemmbo" {
                "whsec_c2VjcmV0"
            } else {
                "secret"
            };
            let config = SourceConfig {
                secrets: vec![Secret::new(secret.to_owned())],
                ..SourceConfig::default()
            };
            (p.name.to_owned(), config)
        })
        .collect::<BTreeMap<_, _>>();
    (
        Registry::from_config(&unsigned).expect("unsigned registry"),
        Registry::from_config(&signed).expect("signed registry"),
    )
});

const HEADERS: &[&str] = &[
    "x-webhook-signature",
    "x-hubpay-signature",
    "x-b54-signature",
    "x-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "idempotencykey",
    "content-type",
];

fuzz_target!(|input: (u8, Option<String>, Vec<(u8, Vec<u8>)>, &[u8])| {
    let (which, hint, headers, body) = input;
    let (unsigned, signed) = &*REGISTRIES;
    let names: Vec<&str> = unsigned.names().collect();
    let name = names[usize::from(which) % names.len()];
    let mut map = HeaderMap::new();
    for (i, value) in headers.iter().take(8) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            let name = HEADERS[usize::from(*i) % HEADERS.len()];
            map.append(HeaderName::from_static(name), value);
        }
    }
    let inbound = Inbound {
        headers: &map,
        body,
        hint: hint.as_deref(),
        received_at: chrono::Utc::now(),
    };
    if let Some(provider) = signed.get(name) {
        let _ = provider.verify(&inbound);
    }
    if let Some(provider) = unsigned.get(name) {
        let _ = provider.verify(&inbound);
        if let Ok(events) = provider.parse(&inbound) {
            for event in events {
                let _ = event.storable();
                let _ = serde_json::to_string(&event).expect("events serialize");
            }
        }
    }
});
