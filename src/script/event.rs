//! The event as scripts see it: a read-only map of the canonical fields (not the raw payload).
//! `data` (the platform's details, which can be large) is converted on first access, since most
//! conditions never read it.

use std::sync::{Arc, OnceLock};

use rhai::{Dynamic, Engine, ImmutableString, Map};

use crate::normalize::Event;

/// `event.data`: converted to Rhai values the first time a script reads it.
#[derive(Clone)]
pub(super) struct LazyData(Arc<(serde_json::Value, OnceLock<Dynamic>)>);

impl LazyData {
    fn get(&self) -> &Dynamic {
        self.0.1.get_or_init(|| {
            rhai::serde::to_dynamic(&self.0.0)
                .map(Dynamic::into_shared)
                .unwrap_or(Dynamic::UNIT)
        })
    }

    fn field(&mut self, name: &str) -> Dynamic {
        match self.get().read_lock::<Map>() {
            Some(map) => map.get(name).cloned().unwrap_or(Dynamic::UNIT),
            None => Dynamic::UNIT,
        }
    }
}

fn text(s: impl Into<ImmutableString>) -> Dynamic {
    Dynamic::from(s.into())
}

fn convert(value: &impl serde::Serialize) -> Dynamic {
    rhai::serde::to_dynamic(value).unwrap_or(Dynamic::UNIT)
}

/// The event as one shared, read-only Rhai map.
pub(super) fn to_dynamic(e: &Event) -> Dynamic {
    let time = |t: chrono::DateTime<chrono::Utc>| {
        text(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    };
    let mut map = Map::new();
    map.insert("id".into(), text(e.id.as_str()));
    map.insert("type".into(), text(e.kind.as_str()));
    map.insert("source".into(), text(e.source.as_str()));
    map.insert("source_event_id".into(), text(e.source_event_id.as_str()));
    map.insert(
        "source_type".into(),
        e.source_type.as_deref().map_or(Dynamic::UNIT, text),
    );
    map.insert("occurred_at".into(), time(e.occurred_at));
    map.insert("received_at".into(), time(e.received_at));
    map.insert("subject".into(), convert(&e.subject));
    // `value` is an exact decimal, so `event.amount.value > 500` compares money as money.
    map.insert(
        "amount".into(),
        e.amount.as_ref().map_or(Dynamic::UNIT, |amount| {
            let mut m = Map::new();
            m.insert("value".into(), Dynamic::from_decimal(amount.value));
            m.insert(
                "currency".into(),
                amount.currency.as_deref().map_or(Dynamic::UNIT, text),
            );
            Dynamic::from_map(m)
        }),
    );
    map.insert(
        "data".into(),
        Dynamic::from(LazyData(Arc::new((e.data.clone(), OnceLock::new())))),
    );
    Dynamic::from_map(map).into_shared()
}

pub(super) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<LazyData>("Data");
    // `event.data.x` and `event.data["x"]`: property access falls back to the indexer.
    engine.register_indexer_get(|data: &mut LazyData, name: &str| data.field(name));
    engine.register_fn("to_string", |data: &mut LazyData| data.0.0.to_string());
    engine.register_fn("to_debug", |data: &mut LazyData| data.0.0.to_string());
    engine.register_fn("keys", |data: &mut LazyData| -> rhai::Array {
        data.0
            .0
            .as_object()
            .map(|m| m.keys().map(|k| Dynamic::from(k.clone())).collect())
            .unwrap_or_default()
    });
}
