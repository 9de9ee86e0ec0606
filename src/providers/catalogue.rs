//! The event catalogue: every documented provider type and the canonical type it maps to,
//! gathered from the platforms' parts in [`PLATFORMS`] order. `signalbox events` prints it,
//! `docs/events.md` documents it (a test keeps them in step), and the rules take their known
//! types from [`known_event_types`].

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use super::PLATFORMS;
use crate::normalize::EventType;
use crate::normalize::catalogue::Entry;

/// Every entry, platform by platform, each platform's in the order it declares them.
pub fn entries() -> impl Iterator<Item = &'static Entry> {
    PLATFORMS.iter().flat_map(|platform| platform.catalogue)
}

static INDEX: LazyLock<HashMap<(&'static str, &'static str), &'static Entry>> =
    LazyLock::new(|| {
        let mut index: HashMap<_, _> = entries().map(|e| ((e.source, e.source_type), e)).collect();
        for platform in PLATFORMS {
            for (source, alias, target) in platform.aliases {
                let entry = index[&(*source, *target)];
                index.insert((*source, *alias), entry);
            }
        }
        index
    });

/// The entry for a provider's type (already stripped of its version), if documented.
pub fn lookup(source: &str, source_type: &str) -> Option<&'static Entry> {
    INDEX.get(&(source, source_type)).copied()
}

/// The canonical types events can have: every catalogued type, and `unknown`.
pub fn known_event_types() -> BTreeSet<String> {
    let mut known: BTreeSet<String> = entries().map(|e| e.kind.to_owned()).collect();
    known.insert(EventType::UNKNOWN.to_owned());
    known
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_types_are_valid_and_entries_unique() {
        let mut seen = std::collections::HashSet::new();
        for entry in entries() {
            EventType::parse(entry.kind).unwrap();
            assert!(
                seen.insert((entry.source, entry.source_type)),
                "{entry:?} twice"
            );
        }
    }

    #[test]
    fn every_entry_and_alias_belongs_to_its_platform() {
        let mut names = std::collections::HashSet::new();
        for platform in PLATFORMS {
            assert!(names.insert(platform.name), "{} twice", platform.name);
            assert!(
                !platform.catalogue.is_empty(),
                "{} has no types",
                platform.name
            );
            for entry in platform.catalogue {
                assert_eq!(entry.source, platform.name, "{entry:?}");
            }
            for (source, alias, target) in platform.aliases {
                assert_eq!(*source, platform.name);
                assert_eq!(lookup(source, alias), lookup(source, target));
                assert!(
                    lookup(source, target).is_some(),
                    "{alias} stands for nothing"
                );
            }
        }
    }

    #[test]
    fn fixed_names_are_kept() {
        let kinds: std::collections::HashSet<&str> = entries().map(|e| e.kind).collect();
        for fixed in [
            "promise_to_pay.created",
            "promise_to_pay.expired",
            "promise_to_pay.invalidated",
            "promise_to_pay.resolved",
            "sms.delivery_failed",
            "email.delivery_failed",
            "invoice.approved",
            "invoice.declined",
            "invoice.paid",
            "strategy.paused",
            "strategy.resumed",
            "strategy.stopped",
            "strategy.finished",
            "claim.created",
            "claim.resolved",
        ] {
            assert!(kinds.contains(fixed), "{fixed}");
        }
    }

    #[test]
    fn known_types_are_the_catalogued_ones_and_unknown() {
        let known = known_event_types();
        assert!(known.contains(EventType::UNKNOWN));
        assert!(entries().all(|e| known.contains(e.kind)));
        assert_eq!(
            known.len(),
            entries().map(|e| e.kind).collect::<BTreeSet<_>>().len() + 1
        );
    }

    #[test]
    fn doc_headings_are_aliases() {
        assert_eq!(
            lookup("receeve", "event.landingPageFullContent.generated")
                .unwrap()
                .kind,
            "landing_page.generated"
        );
    }
}
