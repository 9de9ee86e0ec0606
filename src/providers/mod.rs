//! Provider adapters: turn one HTTP delivery from a platform into canonical events.
//!
//! Receives the raw request (headers and body bytes) from `api::ingest`; verifies its signature
//! on the raw bytes, then parses it into [`Event`]s that the store keeps. An adapter does no IO.

pub mod amili;
pub mod b54;
pub mod bemmbo;
pub mod canonical;
pub mod hubpay;
pub mod receeve;
pub mod settings;
pub mod signature;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};

use crate::config::{ConfigError, Secret};
use crate::normalize::fields::Normalized;
use crate::normalize::{Event, EventType};
use signature::{BodyHmac, PayloadHmac, Svix, Verifier};

pub use crate::normalize::canonical::content_id;
pub use settings::{SignatureEncoding, SourceConfig, validate_sources};

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
}

/// A platform whose webhook is one JSON body making one event: its name, how its deliveries
/// are verified, and the function that reads its body (one per platform module).
pub struct JsonProvider {
    pub name: &'static str,
    pub verifier: Verifier,
    pub normalize: Normalize,
}

/// A platform module's function reading one webhook body (with its headers and path).
pub type Normalize = fn(&serde_json::Value, &Inbound<'_>) -> Result<Normalized, ProviderError>;

impl Provider for JsonProvider {
    fn name(&self) -> &str {
        self.name
    }

    fn verify(&self, req: &Inbound<'_>) -> Result<Verification, ProviderError> {
        self.verifier.verify(req)
    }

    fn parse(&self, req: &Inbound<'_>) -> Result<Vec<Event>, ProviderError> {
        let body = parse_json(req.body)?;
        let normalized = (self.normalize)(&body, req)?;
        Ok(vec![normalized.into_event(
            self.name,
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
    /// The canonical adapter and one adapter per platform, verified as `sources` configures.
    /// Reads secret files. Warns about every source accepted unsigned.
    pub fn from_config(sources: &BTreeMap<String, SourceConfig>) -> Result<Self, ConfigError> {
        let default = SourceConfig::default();
        let settings = |name: &str| sources.get(name).unwrap_or(&default);
        let encoding = |config: &SourceConfig| config.encoding.unwrap_or(SignatureEncoding::Hex);
        let mut registry = Self::default();
        registry.register(Arc::new(canonical::CanonicalProvider));
        let hmac_in_header = |default_header: &'static str| {
            move |config: &SourceConfig, secrets: &[Secret]| {
                let header = config
                    .header
                    .as_deref()
                    .unwrap_or(default_header)
                    .to_ascii_lowercase();
                axum::http::HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| format!("header: '{header}' is not a header name"))?;
                Ok(Verifier::BodyHmac(BodyHmac::new(
                    header,
                    encoding(config),
                    secrets,
                )))
            }
        };
        type Scheme<'a> = Box<dyn Fn(&SourceConfig, &[Secret]) -> Result<Verifier, String> + 'a>;
        let platforms: [(&'static str, Scheme<'_>, Normalize); 5] = [
            (
                "receeve",
                Box::new(|c: &SourceConfig, s: &[Secret]| {
                    Ok(Verifier::PayloadHmac(PayloadHmac::new(encoding(c), s)))
                }),
                receeve::normalize,
            ),
            (
                "bemmbo",
                Box::new(|c: &SourceConfig, s: &[Secret]| {
                    Ok(Verifier::Svix(Svix::new(
                        s,
                        c.tolerance_seconds.unwrap_or(300),
                    )?))
                }),
                bemmbo::normalize,
            ),
            (
                "amili",
                Box::new(hmac_in_header("X-Webhook-Signature")),
                amili::normalize,
            ),
            (
                "hubpay",
                Box::new(hmac_in_header("X-Hubpay-Signature")),
                hubpay::normalize,
            ),
            (
                "b54",
                Box::new(hmac_in_header("X-B54-Signature")),
                b54::normalize,
            ),
        ];
        for (name, scheme, normalize) in platforms {
            let verifier = verifier(name, settings(name), scheme)?;
            registry.register(Arc::new(JsonProvider {
                name,
                verifier,
                normalize,
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

/// The verifier `config` asks for: unsigned, unconfigured (no secret), or `scheme` with the
/// secrets. Reads secret files.
fn verifier(
    name: &str,
    config: &SourceConfig,
    scheme: impl FnOnce(&SourceConfig, &[Secret]) -> Result<Verifier, String>,
) -> Result<Verifier, ConfigError> {
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
    scheme(config, &secrets).map_err(|message| ConfigError::Invalid {
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
