//! Provider adapters: turn one HTTP delivery from a platform into canonical events.
//!
//! Receives the raw request (headers and body bytes) from `api::ingest`; verifies its signature
//! on the raw bytes, then parses it into [`Event`]s that the store keeps. An adapter does no IO.
//!
//! Each platform is one file, `src/providers/<name>.rs`, declaring its [`Platform`]: its name,
//! its signature [`Scheme`], the function reading its bodies (with the helpers of
//! `normalize::fields`), and its part of the event catalogue. [`PLATFORMS`] lists them, and that
//! list drives the registry, the catalogue ([`catalogue`], `signalbox events`, `docs/events.md`),
//! the `sources` config check and the tests. A new platform: add `src/providers/<name>.rs`
//! declaring its `Platform`, and one line in `PLATFORMS` (with its `pub mod`); then its fixtures
//! under `tests/fixtures/providers/<name>/`, which the tests require (see the README).
//!
//! The catalogue lookup happens here, not in normalize: the adapter finds its type's entry and
//! hands it to [`Normalized::into_event`], so normalize never reaches back into providers.

pub mod amili;
pub mod b54;
pub mod bemmbo;
pub mod canonical;
pub mod carried;
pub mod catalogue;
pub mod hubpay;
pub mod receeve;
pub mod settings;
pub mod signature;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};

use crate::config::ConfigError;
use crate::normalize::catalogue::{Alias, Entry};
use crate::normalize::fields::Normalized;
use crate::normalize::{Event, EventType};
use signature::Verifier;

pub use crate::normalize::canonical::content_id;
pub use catalogue::known_event_types;
pub use settings::{SignatureEncoding, SourceConfig, validate_sources};
pub use signature::Scheme;

/// The platforms this engine serves, in the order the catalogue lists them.
pub static PLATFORMS: &[&Platform] = &[
    &receeve::PLATFORM,
    &hubpay::PLATFORM,
    &amili::PLATFORM,
    &bemmbo::PLATFORM,
    &b54::PLATFORM,
];

/// A platform whose webhook is one JSON body making one event, as its module declares it.
#[derive(Debug)]
pub struct Platform {
    /// The source name its events get, the `{source}` in `/webhooks/{source}`, and its key
    /// under `sources` in the config.
    pub name: &'static str,
    /// How its deliveries are signed.
    pub scheme: Scheme,
    /// Reads one of its webhook bodies.
    pub normalize: Normalize,
    /// Its documented types, each with the canonical type it maps to.
    pub catalogue: &'static [Entry],
    /// Doc headings of its that differ from the type deliveries carry.
    pub aliases: &'static [Alias],
    /// Headers it reads besides its signature's (event type, ids): stored with its deliveries.
    pub headers: &'static [&'static str],
}

/// The platform named `name`, if [`PLATFORMS`] has it.
pub fn platform(name: &str) -> Option<&'static Platform> {
    PLATFORMS.iter().copied().find(|p| p.name == name)
}

/// The source the engine's own events carry (`emit`).
pub const ENGINE_SOURCE: &str = "signalbox";

/// Whether a posted canonical event may claim `source` only with a token that names it: a
/// platform's source (its signature is the proof) or the engine's own.
pub fn reserved_source(source: &str) -> bool {
    source == ENGINE_SOURCE || source == "canonical" || platform(source).is_some()
}

/// One request as it reached `POST /webhooks/{source}[/{hint}]`.
pub struct Inbound<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// The path segment after the source, for providers that deliver per-type endpoints.
    pub hint: Option<&'a str>,
    pub received_at: DateTime<Utc>,
}

/// How a delivery's authenticity was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The signature matched a configured secret.
    Verified,
    /// The source is configured as unsigned, or the adapter has no signature scheme.
    Unsigned,
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Unsigned => "unsigned",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The delivery's signature is missing, stale or wrong: answered with 401.
    #[error("signature rejected: {reason}")]
    Signature { reason: String },
    /// The body is not JSON: answered with 400, saying where.
    #[error("{reason}")]
    MalformedJson { reason: String },
    /// The JSON is not what this provider sends: answered with 400, saying what.
    #[error("{reason}")]
    Invalid { reason: String },
}

/// A platform that sends webhooks.
pub trait Provider: Send + Sync {
    /// The source name events get, and the `{source}` in `/webhooks/{source}`.
    fn name(&self) -> &str;

    /// Checks the delivery's signature on the raw body, before anything parses it.
    fn verify(&self, req: &Inbound<'_>) -> Result<Verification, ProviderError>;

    /// Turns a verified delivery into canonical events (usually one).
    fn parse(&self, req: &Inbound<'_>) -> Result<Vec<Event>, ProviderError>;

    /// Whether the header `name` (lowercase) is stored with its deliveries: one it reads
    /// (signature, event type, ids, timestamps). Others are not, beyond the few that ingestion
    /// keeps for every source.
    fn keeps_header(&self, _name: &str) -> bool {
        false
    }
}

/// A platform's adapter: its [`Platform`] with the verifier its settings configure.
pub struct JsonProvider {
    pub platform: &'static Platform,
    pub verifier: Verifier,
}

/// A platform module's function reading one webhook body (with its headers and path).
pub type Normalize = fn(&serde_json::Value, &Inbound<'_>) -> Result<Normalized, ProviderError>;

impl Provider for JsonProvider {
    fn name(&self) -> &str {
        self.platform.name
    }

    fn verify(&self, req: &Inbound<'_>) -> Result<Verification, ProviderError> {
        self.verifier.verify(req)
    }

    fn keeps_header(&self, name: &str) -> bool {
        let declared = self.platform.headers.iter().copied();
        declared
            .chain(self.platform.scheme.headers())
            .any(|h| h.eq_ignore_ascii_case(name))
            || self.verifier.header() == Some(name)
    }

    fn parse(&self, req: &Inbound<'_>) -> Result<Vec<Event>, ProviderError> {
        let body = parse_json(req.body)?;
        let normalized = (self.platform.normalize)(&body, req)?;
        let entry = normalized
            .catalogue_type
            .as_deref()
            .and_then(|t| catalogue::lookup(self.platform.name, t));
        Ok(vec![normalized.into_event(
            self.platform.name,
            entry,
            body,
            req.received_at,
        )])
    }
}

/// The adapters this engine serves, by source name.
#[derive(Clone, Default)]
pub struct Registry {
    providers: BTreeMap<String, Arc<dyn Provider>>,
    /// `(source, source_type)` of uncatalogued types already logged by this process.
    unknown_seen: Arc<Mutex<HashSet<SourceType>>>,
}

impl Registry {
    /// The canonical adapter and one adapter per platform of [`PLATFORMS`], verified as
    /// `sources` configures. Reads secret files. Warns about every source accepted unsigned.
    pub fn from_config(sources: &BTreeMap<String, SourceConfig>) -> Result<Self, ConfigError> {
        let default = SourceConfig::default();
        let mut registry = Self::default();
        registry.register(Arc::new(canonical::CanonicalProvider));
        for platform in PLATFORMS {
            let config = sources.get(platform.name).unwrap_or(&default);
            registry.register(Arc::new(JsonProvider {
                platform,
                verifier: verifier(platform, config)?,
            }));
        }
        Ok(registry)
    }

    pub fn register(&mut self, provider: Arc<dyn Provider>) {
        self.providers.insert(provider.name().to_owned(), provider);
    }

    pub fn get(&self, source: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(source)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(String::as_str)
    }

    /// Logs, once per process and type, an event whose type the catalogue does not know.
    /// (How many arrived is in the store: `GET /v1/unknown-types`.)
    pub fn note_unknown(&self, event: &Event) {
        if event.kind.as_str() != EventType::UNKNOWN {
            return;
        }
        let key = (event.source.clone(), event.source_type.clone());
        let first = self
            .unknown_seen
            .lock()
            .expect("unknown-type set is never poisoned")
            .insert(key);
        if first {
            tracing::warn!(source = %event.source, source_type = ?event.source_type, "event type not in the catalogue: stored as 'unknown'");
        }
    }
}

/// A source and the provider's type name, if it gave one.
type SourceType = (String, Option<String>);

/// The verifier `config` asks for: unsigned, unconfigured (no secret), or the platform's scheme
/// with the secrets. Reads secret files.
fn verifier(platform: &Platform, config: &SourceConfig) -> Result<Verifier, ConfigError> {
    let name = platform.name;
    if config.unsigned {
        tracing::warn!(
            source = name,
            "accepting unsigned deliveries: anyone who can reach the endpoint can post events"
        );
        return Ok(Verifier::Unsigned);
    }
    let secrets = config.load_secrets(name)?;
    if secrets.is_empty() {
        return Ok(Verifier::Unconfigured {
            source: name.to_owned(),
        });
    }
    platform
        .scheme
        .verifier(config, &secrets)
        .map_err(|message| ConfigError::Invalid {
            key: "sources",
            message: format!("{name}.{message}"),
        })
}

/// The body as JSON, or a 400 that says where it breaks.
pub(crate) fn parse_json(body: &[u8]) -> Result<serde_json::Value, ProviderError> {
    serde_json::from_slice(body).map_err(|e| ProviderError::MalformedJson {
        reason: format!("malformed JSON: {e}"),
    })
}

pub(crate) fn invalid(reason: &str) -> ProviderError {
    ProviderError::Invalid {
        reason: reason.to_owned(),
    }
}

/// A header's value as text, if present and not blank.
pub(crate) fn header_text(req: &Inbound<'_>, name: &str) -> Option<String> {
    let value = req.headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}
