//! What makes a rule run. Today one kind: events, by canonical type pattern (`on`), provider
//! type pattern (`source_types`) and platform (`sources`); patterns are compiled when rules
//! load. Evaluation and `signalbox try` ask the same [`Trigger::check`].
//!
//! A new kind of trigger (a schedule, say) is one more variant here, with its check.

use std::fmt;

use crate::normalize::Event;
use crate::script::bindings::glob_matches;

/// A type pattern: exact, or with `*` matching any run of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    glob: bool,
}

impl Pattern {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            glob: text.contains('*'),
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        if self.glob {
            glob_matches(&self.text, value)
        } else {
            self.text == value
        }
    }

    pub fn is_glob(&self) -> bool {
        self.glob
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What makes a rule run.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// An event arrives whose type matches `on` (or whose provider type matches
    /// `source_types`), from one of `sources` (any when empty).
    Events {
        on: Vec<Pattern>,
        source_types: Vec<Pattern>,
        sources: Vec<String>,
    },
    /// The rule's own schedule ticks (`schedule.tick` events the engine stores, one per
    /// rule and tick).
    Schedule { rule: String },
}

/// Why a trigger does not take an event. Cheap to make; [`Trigger::explain`] words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// Neither the type nor the provider type matches.
    Type,
    /// The type matches, the platform is not one of `sources`.
    Source,
    /// A scheduled rule, and the event is not one of its ticks.
    NotItsTick,
}

impl Trigger {
    pub fn events(on: &[String], source_types: &[String], sources: &[String]) -> Self {
        Self::Events {
            on: on.iter().map(|p| Pattern::new(p)).collect(),
            source_types: source_types.iter().map(|p| Pattern::new(p)).collect(),
            sources: sources.to_vec(),
        }
    }

    /// Whether the trigger takes the event.
    pub fn check(&self, event: &Event) -> Result<(), Mismatch> {
        match self {
            Self::Events {
                on,
                source_types,
                sources,
            } => {
                // The engine's own ticks and deadlines go to their rules alone, never to a
                // pattern such as `*`.
                if crate::normalize::EventType::INTERNAL.contains(&event.kind.as_str())
                    && event.source == crate::providers::ENGINE_SOURCE
                {
                    return Err(Mismatch::Type);
                }
                let by_type = on.iter().any(|p| p.matches(event.kind.as_str()));
                let by_source_type = !by_type
                    && event
                        .source_type
                        .as_deref()
                        .is_some_and(|st| source_types.iter().any(|p| p.matches(st)));
                if !by_type && !by_source_type {
                    return Err(Mismatch::Type);
                }
                if !sources.is_empty() && !sources.iter().any(|s| s == &event.source) {
                    return Err(Mismatch::Source);
                }
                Ok(())
            }
            Self::Schedule { rule } => {
                let its_tick = event.kind.as_str() == super::time::TICK
                    && event.source == crate::providers::ENGINE_SOURCE
                    && event.data.get("rule").and_then(|r| r.as_str()) == Some(rule.as_str());
                if its_tick {
                    Ok(())
                } else {
                    Err(Mismatch::NotItsTick)
                }
            }
        }
    }

    /// Says why the trigger did not take the event, for rule authors.
    pub fn explain(&self, mismatch: Mismatch, event: &Event) -> String {
        let list = |items: &mut dyn Iterator<Item = &str>| items.collect::<Vec<_>>().join(", ");
        match (self, mismatch) {
            (
                Self::Events {
                    on, source_types, ..
                },
                Mismatch::Type,
            ) => {
                let mut reason = format!(
                    "type '{}' is not in on: [{}]",
                    event.kind,
                    list(&mut on.iter().map(Pattern::as_str))
                );
                if !source_types.is_empty() {
                    reason += &format!(
                        " and source_type '{}' is not in source_types: [{}]",
                        event.source_type.as_deref().unwrap_or(""),
                        list(&mut source_types.iter().map(Pattern::as_str))
                    );
                }
                reason
            }
            (Self::Events { sources, .. }, Mismatch::Source) => format!(
                "source '{}' is not in sources: [{}]",
                event.source,
                sources.join(", ")
            ),
            (Self::Schedule { .. }, _) | (Self::Events { .. }, Mismatch::NotItsTick) => {
                "a scheduled rule runs on its schedule's ticks, not on events".into()
            }
        }
    }

    /// The exact event types it names, or `None` when any event must be checked (a glob or a
    /// provider type): the rule set indexes rules by these.
    pub fn exact_types(&self) -> Option<Box<dyn Iterator<Item = &str> + '_>> {
        match self {
            Self::Events {
                on, source_types, ..
            } => (source_types.is_empty() && !on.iter().any(Pattern::is_glob)).then(|| {
                Box::new(on.iter().map(Pattern::as_str)) as Box<dyn Iterator<Item = &str>>
            }),
            Self::Schedule { .. } => Some(Box::new(std::iter::once(super::time::TICK))),
        }
    }
}
