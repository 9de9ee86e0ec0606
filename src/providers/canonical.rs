//! `POST /webhooks/canonical`: canonical JSON, the same format as `POST /v1/events`.

use super::{Inbound, Provider, ProviderError, Verification};
use crate::normalize::Event;
use crate::normalize::canonical::{CanonicalError, parse_body};

pub struct CanonicalProvider;

impl Provider for CanonicalProvider {
    fn name(&self) -> &str {
        "canonical"
    }

    fn verify(&self, _req: &Inbound<'_>) -> Result<Verification, ProviderError> {
        Ok(Verification::Unsigned)
    }

    fn parse(&self, req: &Inbound<'_>) -> Result<Vec<Event>, ProviderError> {
        parse_body(req.body, req.received_at).map_err(|e| match e {
            CanonicalError::MalformedJson(reason) => ProviderError::MalformedJson { reason },
            CanonicalError::InvalidEvent(reason) => ProviderError::Invalid { reason },
        })
    }
}
