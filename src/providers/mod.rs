//! Provider adapters: turn one HTTP delivery from a platform into canonical events.
//!
//! Receives the raw request (headers and body bytes) from `api::ingest`; verifies its signature
//! on the raw bytes, then parses it into [`Event`]s that the store keeps. An adapter does no IO.

pub mod canonical;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};

use crate::normalize::Event;

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

/// The adapters this engine serves, by source name.
#[derive(Clone, Default)]
pub struct Registry {
    providers: BTreeMap<String, Arc<dyn Provider>>,
}

impl Registry {
    /// The built-in adapters.
    pub fn builtin() -> Self {
        let mut registry = Self::default();
        registry.register(Arc::new(canonical::CanonicalProvider));
        registry
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
}
