//! Action kinds: what a rule can do when it fires, each kind in one file that owns its rule
//! parameters (`<Kind>Config`, what the rule file says), their check, its target, its operator
//! settings, its stored form (`<Kind>V1`, what the outbox keeps), its retry policy and its
//! executor. The one list of kinds is the [`action_kinds!`] invocation below.
//!
//! Receives rendered parameters from rule evaluation (checked here, then frozen into a
//! versioned [`Payload`]) and, from the dispatcher (`crate::outbox`), planned actions to run:
//! each run returns an [`Outcome`] decided where the failure happens; the dispatcher only acts
//! on it.
//!
//! A new kind (say `sms`): add `src/actions/sms.rs` with `SmsConfig: Params` and
//! `SmsV1: Deliver`, and one line `"sms" => Sms(sms::SmsConfig, sms::SmsV1)` in the list. If it
//! has operator settings, they are a struct in its file and a field of [`ActionsConfig`].

pub mod email;
pub mod emit;
pub mod guard;
pub(crate) mod http;
pub mod retry;
pub mod secrets;
pub mod strategy;
pub mod webhook;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;

use crate::clock::SharedClock;
use crate::store::Store;
use retry::RetryConfig;

/// What one delivery attempt came to, decided where the failure happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered {
        status: Option<u16>,
        reply: Option<String>,
    },
    /// Worth trying again: a timeout, a refused connection, a 5xx or 429, a transient SMTP reply.
    /// `not_before` is the target's own Retry-After.
    Retry {
        reason: String,
        status: Option<u16>,
        not_before: Option<Duration>,
    },
    /// Trying again would fail the same way: a 4xx, invalid parameters, nothing configured.
    Failed { reason: String, status: Option<u16> },
}

impl Outcome {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Delivered { status, .. }
            | Self::Retry { status, .. }
            | Self::Failed { status, .. } => *status,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Self::Delivered { .. } => None,
            Self::Retry { reason, .. } | Self::Failed { reason, .. } => Some(reason),
        }
    }
}

/// A kind's parameters as the rule file writes them.
pub trait Params {
    /// The form the outbox keeps.
    type Stored;

    /// Problems with the parameters. Values for which `skip` is true (templates, before they
    /// are rendered) are not checked.
    fn check(&self, skip: &dyn Fn(&str) -> bool) -> Vec<String>;

    /// What the action talks to: actions to one target share its concurrency limit.
    fn target(&self) -> String;

    /// The parameters frozen for the outbox.
    fn stored(&self) -> Self::Stored;
}

/// A kind's stored action, run by its executor.
pub trait Deliver {
    fn retry_policy<'a>(&self, config: &'a ActionsConfig) -> &'a RetryConfig;

    fn deliver(
        &self,
        executors: &Executors,
        action: &Delivery,
    ) -> impl Future<Output = Outcome> + Send;
}

/// Declares the kinds: the rule-file enum ([`ActionConfig`]), the stored enum
/// ([`StoredAction`]) and their dispatch to each kind's [`Params`] and [`Deliver`].
macro_rules! action_kinds {
    ($($name:literal => $variant:ident($config:ty, $stored:ty)),* $(,)?) => {
        /// What a rule does when it fires. Every string may be a template:
        /// `{{ event.subject.claim }}`.
        #[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
        #[serde(tag = "type")]
        pub enum ActionConfig {
            $(#[serde(rename = $name)] $variant($config)),*
        }

        /// A planned action as the outbox keeps it (inside a versioned [`Payload`]).
        #[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
        #[serde(tag = "type")]
        pub enum StoredAction {
            $(#[serde(rename = $name)] $variant($stored)),*
        }

        /// Every action kind's name.
        pub const KINDS: &[&str] = &[$($name),*];

        impl ActionConfig {
            pub fn kind(&self) -> &'static str {
                match self { $(Self::$variant(_) => $name),* }
            }

            /// Problems with the parameters (`skip`: values not to check, such as templates).
            pub fn check(&self, skip: &dyn Fn(&str) -> bool) -> Vec<String> {
                match self { $(Self::$variant(p) => p.check(skip)),* }
            }

            pub fn target(&self) -> String {
                match self { $(Self::$variant(p) => p.target()),* }
            }

            pub fn stored(&self) -> StoredAction {
                match self { $(Self::$variant(p) => StoredAction::$variant(p.stored().into())),* }
            }
        }

        impl StoredAction {
            pub fn kind(&self) -> &'static str {
                match self { $(Self::$variant(_) => $name),* }
            }

            fn retry_policy<'a>(&self, config: &'a ActionsConfig) -> &'a RetryConfig {
                match self { $(Self::$variant(p) => p.retry_policy(config)),* }
            }

            async fn deliver(&self, executors: &Executors, action: &Delivery) -> Outcome {
                match self { $(Self::$variant(p) => p.deliver(executors, action).await),* }
            }
        }

        impl Executors {
            /// The kinds this instance delivers: all of them (a kind it cannot run, such as
            /// email without an SMTP server, fails with the reason rather than waiting).
            pub fn kinds(&self) -> Vec<&'static str> {
                KINDS.to_vec()
            }
        }
    };
}

action_kinds! {
    "webhook" => Webhook(webhook::WebhookConfig, webhook::WebhookV1),
    "email" => Email(email::EmailConfig, email::EmailV1),
    "pause_strategy" => PauseStrategy(strategy::StrategyConfig, strategy::PauseV1),
    "resume_strategy" => ResumeStrategy(strategy::StrategyConfig, strategy::ResumeV1),
    "emit" => Emit(emit::EmitConfig, emit::EmitV1),
}

/// A stored action's parameters, versioned so rows written by older engines stay readable:
/// `{"version": "1", "action": {"type": "webhook", ...}}`. A new stored format becomes a new
/// variant that converts to the current one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum Payload {
    #[serde(rename = "1")]
    V1 { action: StoredAction },
}

impl Payload {
    pub fn current(action: StoredAction) -> Self {
        Self::V1 { action }
    }

    /// Reads a stored payload, whatever version wrote it.
    pub fn decode(stored: &Value) -> Result<StoredAction, String> {
        match Self::deserialize(stored) {
            Ok(Self::V1 { action }) => Ok(action),
            Err(e) => Err(format!("stored action is unreadable: {e}")),
        }
    }
}

/// A planned action taken from the outbox for one attempt.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub rule_id: String,
    pub kind: String,
    pub target: String,
    /// The parameters, or why the stored payload cannot be read.
    pub action: Result<StoredAction, String>,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// How planned actions are delivered (`actions:` in the config file): the outbox's limits and
/// the settings of each action kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionsConfig {
    /// Deliveries in flight at once in this instance. Default 16.
    pub workers: usize,
    /// Deliveries in flight at once to one target (a host, the SMTP server, a platform), so a
    /// slow target does not starve the others. Default 4.
    pub per_target: usize,
    /// How long an instance holds an action it took; after a crash, others retake it after
    /// this. Default 60s.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often to look for due actions when nothing signals new ones. Default 500ms.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How many `emit` actions may chain (an emitted event's rules emitting again ...). Default 5.
    pub max_chain_depth: u32,
    /// Hosts that outgoing requests (webhooks, strategy connectors, SMTP) may reach although
    /// they are, or resolve to, loopback, private, link-local or other local addresses: names
    /// (compared without case and without a trailing dot) or IP addresses. Every other target
    /// is refused when any address it resolves to is local. Default none.
    pub allowed_hosts: Vec<String>,
    /// Folder of secret files for `${secret:NAME}` in webhook headers: the file `NAME`, read at
    /// delivery, when no environment variable `NAME` is set. Default none (environment only).
    pub secrets_dir: Option<PathBuf>,
    pub webhook: webhook::WebhookSettings,
    pub email: email::EmailSettings,
    /// Strategy connectors, keyed by platform (the `platform` of pause/resume actions).
    pub connectors: strategy::Connectors,
    /// Retry policy for emit actions (storing an event). Default 5 attempts, 1s to 1m.
    pub emit_retry: RetryConfig,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        Self {
            workers: 16,
            per_target: 4,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
            max_chain_depth: 5,
            allowed_hosts: Vec::new(),
            secrets_dir: None,
            webhook: webhook::WebhookSettings::default(),
            email: email::EmailSettings::default(),
            connectors: BTreeMap::new(),
            emit_retry: RetryConfig {
                max_attempts: 5,
                initial_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(60),
                ..RetryConfig::default()
            },
        }
    }
}

/// The setting named when a local target is refused.
const ALLOWED_HOSTS_SETTING: &str = "actions.allowed_hosts";

impl ActionsConfig {
    /// Hosts every kind of outgoing request may reach although local (`allowed_hosts`).
    pub fn local_allowed(&self) -> guard::AllowList {
        guard::AllowList::new(&self.allowed_hosts, ALLOWED_HOSTS_SETTING)
    }

    /// Every problem with values that parse but cannot work, as `(key, message)`. Does no IO.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.workers == 0 || self.per_target == 0 {
            problems.push((
                "actions".into(),
                "workers and per_target must be greater than 0".into(),
            ));
        }
        let retries = [
            ("actions.webhook.retry".to_owned(), &self.webhook.retry),
            ("actions.email.retry".to_owned(), &self.email.retry),
            ("actions.emit_retry".to_owned(), &self.emit_retry),
        ];
        let connector_retries = self
            .connectors
            .iter()
            .map(|(p, c)| (format!("actions.connectors.{p}.retry"), &c.retry));
        for (key, retry) in retries.into_iter().chain(connector_retries) {
            if let Some(problem) = retry.problem() {
                problems.push((key, problem.into()));
            }
        }
        for (platform, connector) in &self.connectors {
            if url::Url::parse(&connector.base_url).is_err() {
                problems.push((
                    "actions.connectors".into(),
                    format!("{platform}.base_url: '{}' is not a URL", connector.base_url),
                ));
            }
        }
        problems
    }
}

/// Everything needed to run actions, built once at start.
pub struct Executors {
    store: Store,
    config: ActionsConfig,
    /// For webhooks: local hosts allowed when in `allowed_hosts` or `webhook.allowed_hosts`.
    http: reqwest::Client,
    /// For strategy connectors: local hosts allowed when in `allowed_hosts`.
    connector_http: reqwest::Client,
    mailer: Option<email::Mailer>,
    /// Notified when an emitted event is stored, so the processor takes it at once.
    stored: Arc<Notify>,
    clock: SharedClock,
}

impl Executors {
    pub fn new(
        store: Store,
        config: ActionsConfig,
        stored: Arc<Notify>,
        clock: SharedClock,
    ) -> Result<Self, String> {
        let mailer = email::Mailer::new(&config.email, config.local_allowed())?;
        let webhook_allowed = guard::AllowList::new(
            config
                .allowed_hosts
                .iter()
                .chain(&config.webhook.allowed_hosts),
            ALLOWED_HOSTS_SETTING,
        );
        Ok(Self {
            store,
            http: http::client(webhook_allowed)?,
            connector_http: http::client(config.local_allowed())?,
            config,
            mailer,
            stored,
            clock,
        })
    }

    /// The retry policy of an action's kind (for strategy calls, its platform's connector).
    pub fn retry_policy(&self, action: &Delivery) -> &RetryConfig {
        match &action.action {
            Ok(stored) => stored.retry_policy(&self.config),
            Err(_) => &self.config.webhook.retry,
        }
    }

    pub async fn execute(&self, action: &Delivery) -> Outcome {
        match &action.action {
            Ok(stored) => stored.deliver(self, action).await,
            Err(reason) => Outcome::Failed {
                reason: reason.clone(),
                status: None,
            },
        }
    }
}

/// A parameter that goes into a header must be one line.
fn one_line(field: &str, value: &str, problems: &mut Vec<String>) {
    if value.contains(['\r', '\n']) {
        problems.push(format!("{field} must be one line"));
    }
}

/// A string or a list of strings, as a list.
pub(crate) fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}
