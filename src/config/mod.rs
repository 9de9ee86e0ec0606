//! Service configuration: defaults, then a YAML file, then `SIGNALBOX_*` environment variables,
//! then command-line flags. `///` comments on the fields are the operator's reference
//! (mirrored in `docs/config.md`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod duration;
mod interpolate;
mod secret;

use interpolate::interpolate;
pub use interpolate::interpolate_str;
pub use secret::Secret;

/// The `sources` settings belong to the providers; re-exported as part of the config.
pub use crate::api::{MetricsConfig, ServerConfig};
pub use crate::processor::ProcessingConfig;
pub use crate::providers::{SignatureEncoding, SourceConfig};
pub use crate::store::{RejectedConfig, RetentionConfig, StoreConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The management listener: the API (behind tokens), and the platforms' webhooks too.
    /// Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// A second, public listener serving only `POST /webhooks/{source}` (signed platform
    /// webhooks) and `/healthz`, `/readyz`: the address the platforms are given. Default none.
    pub public_listen: Option<SocketAddr>,
    /// API tokens, each `{name, token: ${VAR}, roles: [ingest|read|operate|admin], sources}`
    /// (`sources` limits what an ingest token's events may claim). With no tokens here or
    /// created by `signalbox tokens create`, the API answers without a token. Default none.
    pub tokens: Vec<crate::auth::TokenConfig>,
    /// Serve the API without tokens on an address other than loopback. Default false: `serve`
    /// refuses to start so.
    pub allow_unauthenticated: bool,
    /// Who may read `GET /metrics`: `{token: ${VAR}}` asks for that token (or a read token).
    /// Default: no token needed, as Prometheus scrapes.
    pub metrics: MetricsConfig,
    /// Where events are stored: `sqlite://FILE` (created if missing) or `postgres://...`.
    /// Default `sqlite://signalbox.db`. May contain `${VAR}` for a password.
    pub database_url: String,
    /// Folder of rule files. Default `rules`.
    pub rules_dir: PathBuf,
    /// Refuse a rules change (and a start's folder) whose inline tests fail, as an invalid
    /// one is. Default true.
    pub rule_tests_must_pass: bool,
    /// Largest request body accepted, in bytes; larger ones get 413. Default 1048576 (1 MiB).
    pub max_body_bytes: usize,
    /// Log output: `human` (default) or `json`.
    pub log_format: LogFormat,
    /// Bounds of the HTTP server: timeouts, connections and requests at once, the ingestion
    /// memory budget, list page size.
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub processing: ProcessingConfig,
    /// How planned actions are delivered.
    pub actions: crate::actions::ActionsConfig,
    /// How long deliveries, events, evaluations, actions and attempts are kept, and what is
    /// kept of refused deliveries.
    pub retention: RetentionConfig,
    /// Business-day calendars besides the built-in `DE`, `ES`, `CL` and `weekdays`:
    /// `{acme: {extends: DE, holidays: [2026-12-24]}}`.
    #[serde(default)]
    pub calendars: BTreeMap<String, crate::calendar::CalendarConfig>,
    /// When scripts' `is_quiet_hours` says contacting a debtor is out of hours, on the local
    /// clock of the zone they name: `{start: "21:00", end: "08:00"}` (the default).
    #[serde(default)]
    pub quiet_hours: crate::calendar::QuietHoursConfig,
    /// Per-platform webhook settings, keyed by source (`receeve`, `amili`, `bemmbo`, `hubpay`,
    /// `b54`). A platform with no secret and not marked `unsigned` has its deliveries refused.
    pub sources: BTreeMap<String, SourceConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Human,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_listen: None,
            tokens: Vec::new(),
            allow_unauthenticated: false,
            metrics: MetricsConfig::default(),
            database_url: "sqlite://signalbox.db".into(),
            rules_dir: PathBuf::from("rules"),
            rule_tests_must_pass: true,
            max_body_bytes: 1024 * 1024,
            log_format: LogFormat::Human,
            server: ServerConfig::default(),
            store: StoreConfig::default(),
            processing: ProcessingConfig::default(),
            sources: BTreeMap::new(),
            actions: crate::actions::ActionsConfig::default(),
            retention: RetentionConfig::default(),
            calendars: BTreeMap::new(),
            quiet_hours: Default::default(),
        }
    }
}

impl Config {
    /// The built-in calendars with the config's `calendars:` on top, and its quiet hours.
    pub fn calendars(&self) -> Result<std::sync::Arc<crate::calendar::Calendars>, ConfigError> {
        let invalid = |key, problems: Vec<String>| ConfigError::Invalid {
            key,
            message: problems.join("; "),
        };
        let quiet_hours = crate::calendar::QuietHours::from_config(&self.quiet_hours)
            .map_err(|p| invalid("quiet_hours", p))?;
        crate::calendar::Calendars::from_config(&self.calendars)
            .map(|c| std::sync::Arc::new(c.with_quiet_hours(quiet_hours)))
            .map_err(|p| invalid("calendars", p))
    }
}

/// A configuration problem, naming where it is and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{var}: {message}")]
    Env { var: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("{key}: {message}")]
    Setting { key: String, message: String },
    /// Every problem found, one per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Several(Vec<ConfigError>),
}

/// Environment variables that override keys, with the key each sets.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("SIGNALBOX_LISTEN", "listen"),
    ("SIGNALBOX_PUBLIC_LISTEN", "public_listen"),
    ("SIGNALBOX_DATABASE_URL", "database_url"),
    ("SIGNALBOX_RULES_DIR", "rules_dir"),
    ("SIGNALBOX_MAX_BODY_BYTES", "max_body_bytes"),
    ("SIGNALBOX_LOG_FORMAT", "log_format"),
];

impl Config {
    /// Defaults, then the file (if any), then the `SIGNALBOX_*` entries of `vars`. `vars` also
    /// feeds `${VAR}` interpolation in the file; pass `std::env::vars()` in production.
    pub fn load(file: Option<&Path>, vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_file(path, vars)?,
            None => Self::default(),
        };
        for (var, key) in ENV_OVERRIDES {
            if let Some(value) = vars.get(*var) {
                config.set(key, value).map_err(|message| ConfigError::Env {
                    var: (*var).into(),
                    message,
                })?;
            }
        }
        Ok(config)
    }

    fn from_file(path: &Path, vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let file_error = |message: String| ConfigError::File {
            path: path.into(),
            message,
        };
        let mut value: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| file_error(e.to_string()))?;
        if value.is_null() {
            return Ok(Self::default());
        }
        interpolate(&mut value, vars, &mut Vec::new()).map_err(file_error)?;
        serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            file_error(if key == "." {
                e.inner().to_string()
            } else {
                format!("{key}: {}", e.inner())
            })
        })
    }

    /// Sets one top-level key from text (an environment variable or a flag).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "listen" => {
                self.listen = value
                    .parse()
                    .map_err(|e| format!("'{value}' is not an address like 127.0.0.1:8080: {e}"))?
            }
            "public_listen" => {
                self.public_listen =
                    Some(value.parse().map_err(|e| {
                        format!("'{value}' is not an address like 0.0.0.0:8443: {e}")
                    })?)
            }
            "database_url" => self.database_url = value.to_owned(),
            "rules_dir" => self.rules_dir = PathBuf::from(value),
            "max_body_bytes" => {
                self.max_body_bytes = value
                    .parse()
                    .map_err(|e| format!("'{value}' is not a number of bytes: {e}"))?
            }
            "log_format" => {
                self.log_format = match value {
                    "human" => LogFormat::Human,
                    "json" => LogFormat::Json,
                    _ => return Err(format!("'{value}' is not one of: human, json")),
                }
            }
            _ => return Err(format!("unknown key '{key}'")),
        }
        Ok(())
    }

    /// Checks values that parse but cannot work. Does no IO.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, key: &'static str, message: &str| {
            if !ok {
                problems.push(ConfigError::Invalid {
                    key,
                    message: message.into(),
                });
            }
        };
        let url = self.database_url.as_str();
        check(
            url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"),
            "database_url",
            "must start with sqlite:// or postgres://",
        );
        let positive = "must be greater than 0";
        check(self.max_body_bytes > 0, "max_body_bytes", positive);
        check(
            self.store.max_connections > 0,
            "store.max_connections",
            positive,
        );
        check(
            self.processing.batch_size > 0,
            "processing.batch_size",
            positive,
        );
        check(
            !self.processing.lease.is_zero(),
            "processing.lease",
            positive,
        );
        check(
            !self.processing.poll_interval.is_zero(),
            "processing.poll_interval",
            positive,
        );
        check(
            self.processing.lease <= std::time::Duration::from_secs(86_400),
            "processing.lease",
            "must be at most 24h",
        );
        check(
            self.public_listen != Some(self.listen),
            "public_listen",
            "must differ from listen",
        );
        let retry = self.processing.retry.problem();
        check(
            retry.is_none(),
            "processing.retry",
            retry.unwrap_or_default(),
        );
        problems.extend(
            self.server
                .problems(self.max_body_bytes)
                .into_iter()
                .chain(self.actions.problems())
                .chain(self.retention.problems())
                .chain(crate::auth::config_problems(&self.tokens))
                .chain(self.metrics.problems())
                .map(|(key, message)| ConfigError::Setting { key, message }),
        );
        if let Err(e) = crate::providers::validate_sources(&self.sources) {
            problems.push(e);
        }
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0)),
            _ => Err(ConfigError::Several(problems)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn runs_with_no_config_at_all() {
        let config = Config::load(None, &HashMap::new()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.database_url, "sqlite://signalbox.db");
        assert_eq!(config.rules_dir, PathBuf::from("rules"));
        assert_eq!(config.max_body_bytes, 1 << 20);
        config.validate().unwrap();
    }

    #[test]
    fn file_then_env_override_defaults() {
        let file = write(
            "listen: 0.0.0.0:9000\ndatabase_url: postgres://app:${PGPASS}@db/signalbox\nprocessing:\n  batch_size: 10\n",
        );
        let config = Config::load(
            Some(file.path()),
            &vars(&[("PGPASS", "s3cret"), ("SIGNALBOX_LISTEN", "127.0.0.1:7000")]),
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(config.database_url, "postgres://app:s3cret@db/signalbox");
        assert_eq!(config.processing.batch_size, 10);
        assert_eq!(
            config.processing.lease,
            std::time::Duration::from_secs(30),
            "unset keys keep their defaults"
        );
    }

    #[test]
    fn durations_are_humantime_and_the_old_numeric_keys_still_load() {
        use std::time::Duration;
        let new = write(
            "processing:\n  lease: 45s\n  poll_interval: 250ms\nstore:\n  acquire_timeout: 2s\n",
        );
        let old = write(
            "processing:\n  lease_seconds: 45\n  poll_interval_ms: 250\nstore:\n  acquire_timeout_ms: 2000\n",
        );
        for file in [&new, &old] {
            let config = Config::load(Some(file.path()), &vars(&[])).unwrap();
            assert_eq!(
                (
                    config.processing.lease,
                    config.processing.poll_interval,
                    config.store.acquire_timeout
                ),
                (
                    Duration::from_secs(45),
                    Duration::from_millis(250),
                    Duration::from_secs(2)
                )
            );
        }
        let both = write("processing:\n  lease: 45s\n  lease_seconds: 45\n");
        let err = Config::load(Some(both.path()), &vars(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lease and lease_seconds set the same thing"),
            "{err}"
        );
    }

    #[test]
    fn a_partial_processing_retry_keeps_its_defaults_and_is_checked() {
        use std::time::Duration;
        let file = write("processing:\n  retry: { max_attempts: 3 }\n");
        let config = Config::load(Some(file.path()), &vars(&[])).unwrap();
        let retry = &config.processing.retry;
        assert_eq!(
            (retry.max_attempts, retry.initial_delay, retry.max_delay),
            (3, Duration::from_secs(1), Duration::from_secs(300))
        );
        let file = write("processing:\n  retry: { max_attempts: 0 }\n");
        let err = Config::load(Some(file.path()), &vars(&[]))
            .and_then(|c| c.validate().map(|()| c))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("processing.retry: max_attempts must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_key_and_the_problem() {
        let file = write("processing:\n  batch_sise: 10\n");
        let err = Config::load(Some(file.path()), &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                ": processing.batch_sise: unknown field `batch_sise`, expected one of `batch_size`"
            ),
            "{err}"
        );

        let file = write("listen: nowhere\n");
        let err = Config::load(Some(file.path()), &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(": listen: invalid socket address syntax"),
            "{err}"
        );

        let file = write("database_url: postgres://${NOPE}@db\n");
        let err = Config::load(Some(file.path()), &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("database_url: environment variable NOPE is not set"),
            "{err}"
        );

        let err = Config::load(None, &vars(&[("SIGNALBOX_MAX_BODY_BYTES", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("SIGNALBOX_MAX_BODY_BYTES: 'lots' is not a number of bytes"),
            "{err}"
        );

        let config = Config {
            database_url: "mysql://x".into(),
            ..Config::default()
        };
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "database_url: must start with sqlite:// or postgres://"
        );

        let mut config = Config {
            database_url: "mysql://x".into(),
            max_body_bytes: 0,
            ..Config::default()
        };
        config.actions.email.retry.max_attempts = 0;
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "database_url: must start with sqlite:// or postgres://\n\
             max_body_bytes: must be greater than 0\n\
             actions.email.retry: max_attempts must be at least 1 and initial_delay at most max_delay",
            "every problem at once, each naming its key"
        );
    }

    #[test]
    fn sources_take_secrets_from_the_environment_and_hide_them() {
        let file = write(
            "sources:\n  amili:\n    secrets: [\"${AMILI_SECRET}\", \"${AMILI_OLD:-}\"]\n    encoding: base64\n",
        );
        let config = Config::load(Some(file.path()), &vars(&[("AMILI_SECRET", "s3cret")])).unwrap();
        config.validate().unwrap();
        let amili = &config.sources["amili"];
        assert_eq!(
            amili.load_secrets("amili").unwrap().len(),
            1,
            "an empty secret (unset with default) is dropped"
        );
        assert_eq!(amili.encoding, Some(SignatureEncoding::Base64));
        assert!(
            !format!("{config:?}").contains("s3cret"),
            "secrets never print"
        );

        let file = write("sources:\n  acme: {unsigned: true}\n");
        let err = Config::load(Some(file.path()), &HashMap::new())
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("sources: unknown source 'acme'; known sources: receeve"),
            "{err}"
        );
    }
}
