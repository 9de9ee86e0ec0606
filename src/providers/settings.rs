//! `sources.<name>` of the service config: how one platform's webhooks are verified. The YAML
//! shape lives here, next to the schemes that read it; `crate::config` holds it and calls
//! [`validate_sources`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::PLATFORMS;
use crate::config::{ConfigError, Secret};

/// How one platform's webhooks are verified.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Signing secrets, usually `${VAR}`. Give two while rotating: either one verifies.
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// Files holding one secret each (e.g. mounted secrets); read at start, trimmed.
    #[serde(default)]
    pub secret_files: Vec<PathBuf>,
    /// Accept deliveries without checking a signature. Logged as a warning at start.
    #[serde(default)]
    pub unsigned: bool,
    /// Header carrying the signature (HMAC platforms). Defaults: amili `X-Webhook-Signature`,
    /// hubpay `X-Hubpay-Signature`, b54 `X-B54-Signature`.
    pub header: Option<String>,
    /// How the signature is written: `hex` (default) or `base64` (HMAC platforms and receeve).
    pub encoding: Option<SignatureEncoding>,
    /// How far a Svix timestamp may be from now, either way (bemmbo). Default 5m.
    #[serde(default, with = "humantime_serde")]
    pub tolerance: Option<Duration>,
    /// The old spelling of `tolerance`, in seconds.
    pub tolerance_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

impl SignatureEncoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hex => "hex",
            Self::Base64 => "base64",
        }
    }
}

impl SourceConfig {
    /// The timestamp tolerance set by `tolerance` or `tolerance_seconds`, if either is.
    pub fn tolerance(&self) -> Result<Option<Duration>, String> {
        use crate::config::duration::{Unit, either};
        either(
            "tolerance",
            self.tolerance,
            "tolerance_seconds",
            self.tolerance_seconds,
            Unit::Seconds,
        )
    }

    /// The secrets given inline and in files. Reads the files.
    pub fn load_secrets(&self, source: &str) -> Result<Vec<Secret>, ConfigError> {
        let mut secrets: Vec<Secret> = self
            .secrets
            .iter()
            .filter(|s| !s.expose().is_empty())
            .cloned()
            .collect();
        for (i, path) in self.secret_files.iter().enumerate() {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
                key: "sources",
                message: format!(
                    "{source}.secret_files.{i}: cannot read {}: {e}",
                    path.display()
                ),
            })?;
            secrets.push(Secret::new(text.trim().to_owned()));
        }
        Ok(secrets)
    }
}

/// Checks `sources` without IO: each names a platform of [`PLATFORMS`], and none is both signed
/// and unsigned.
pub fn validate_sources(sources: &BTreeMap<String, SourceConfig>) -> Result<(), ConfigError> {
    let invalid = |message: String| {
        Err(ConfigError::Invalid {
            key: "sources",
            message,
        })
    };
    for (source, settings) in sources {
        if super::platform(source).is_none() {
            let known: Vec<&str> = PLATFORMS.iter().map(|p| p.name).collect();
            return invalid(format!(
                "unknown source '{source}'; known sources: {}",
                known.join(", ")
            ));
        }
        let signed = !settings.secrets.is_empty() || !settings.secret_files.is_empty();
        if settings.unsigned && signed {
            return invalid(format!(
                "{source}: set either secrets or unsigned: true, not both"
            ));
        }
        if let Err(e) = settings.tolerance() {
            return invalid(format!("{source}: {e}"));
        }
    }
    Ok(())
}
