//! What a catalogue entry is: one documented provider type and the canonical type it maps to.
//!
//! Each platform declares its own part of the catalogue next to its adapter
//! (`crate::providers::<name>::PLATFORM`); `crate::providers::catalogue` indexes them all.
//! Normalize does not look types up itself: the provider hands the entry it found to
//! [`super::fields::Normalized::into_event`], so this module needs nothing from providers.

/// One documented provider event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub source: &'static str,
    /// The provider's type without its version (`event.promiseToPay.expired`, not `....v1`).
    pub source_type: &'static str,
    /// The canonical type rules match on.
    pub kind: &'static str,
    pub meaning: &'static str,
}

/// A doc heading that differs from the type deliveries carry: `(source, heading, source_type)`,
/// the heading accepted as another name of the entry for `source_type`.
pub type Alias = (&'static str, &'static str, &'static str);

/// An [`Entry`], written short in the platforms' lists.
pub(crate) const fn e(
    source: &'static str,
    source_type: &'static str,
    kind: &'static str,
    meaning: &'static str,
) -> Entry {
    Entry {
        source,
        source_type,
        kind,
        meaning,
    }
}
