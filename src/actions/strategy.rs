//! `pause_strategy` / `resume_strategy`: a call to the platform that owns the claim's collection
//! strategy, through the connector configured for that platform. Signalbox keeps each claim's
//! state (paused by which rule, when, why) and skips a pause already in force.
//!
//! The call: `POST {base_url}{pause_path | resume_path}` (`{claim}` URL-encoded in the path),
//! `Authorization: Bearer <token>`, `Idempotency-Key: <action id>`, and the JSON body
//! `{"claim": ..., "reason": ..., "rule_id": ..., "action_id": ...}`. Any 2xx is success.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::retry::RetryConfig;
use super::{ActionsConfig, Deliver, Delivery, Executors, Outcome, Params, one_line};
use crate::config::Secret;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A pause or resume action as the rule file writes it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyConfig {
    /// The claim whose collection strategy to pause or resume. Default: the event's claim.
    #[serde(default = "default_claim")]
    pub claim: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The platform that owns the strategy. Default: the event's source.
    #[serde(default = "default_platform")]
    pub platform: String,
}

fn default_claim() -> String {
    "{{ event.subject.claim }}".into()
}

fn default_platform() -> String {
    "{{ event.source }}".into()
}

/// A planned strategy call as the outbox keeps it (payload version 1).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct StrategyV1 {
    pub claim: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub platform: String,
}

/// A planned pause (`pause_strategy`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct PauseV1(pub StrategyV1);

/// A planned resume (`resume_strategy`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ResumeV1(pub StrategyV1);

impl From<StrategyV1> for PauseV1 {
    fn from(params: StrategyV1) -> Self {
        Self(params)
    }
}

impl From<StrategyV1> for ResumeV1 {
    fn from(params: StrategyV1) -> Self {
        Self(params)
    }
}

/// How to pause and resume collection strategies at one platform (`actions.connectors.<platform>`,
/// see docs/actions.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// e.g. `https://api.receeve.example/v1`
    pub base_url: String,
    /// Bearer token, as `${VAR}`.
    pub token: Option<Secret>,
    /// Path of the pause call, `{claim}` replaced (URL-encoded). Default `/claims/{claim}/strategy/pause`.
    #[serde(default = "default_pause_path")]
    pub pause_path: String,
    /// Default `/claims/{claim}/strategy/resume`.
    #[serde(default = "default_resume_path")]
    pub resume_path: String,
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_pause_path() -> String {
    "/claims/{claim}/strategy/pause".into()
}

fn default_resume_path() -> String {
    "/claims/{claim}/strategy/resume".into()
}

/// Connectors by platform.
pub type Connectors = BTreeMap<String, ConnectorConfig>;

impl Params for StrategyConfig {
    type Stored = StrategyV1;

    fn check(&self, _skip: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut problems = Vec::new();
        if self.claim.trim().is_empty() {
            problems.push("claim must not be empty".into());
        }
        one_line("claim", &self.claim, &mut problems);
        if self.claim == "." || self.claim == ".." {
            problems.push(format!(
                "claim '{}' cannot be put in the connector's URL path (it would move the call to another path)",
                self.claim
            ));
        }
        problems
    }

    /// The platform: calls to one platform share its concurrency limit.
    fn target(&self) -> String {
        format!("strategy:{}", self.platform)
    }

    fn stored(&self) -> StrategyV1 {
        StrategyV1 {
            claim: self.claim.clone(),
            reason: self.reason.clone(),
            platform: self.platform.clone(),
        }
    }
}

/// The platform's connector's policy; the webhook policy for a platform without one.
fn retry_policy<'a>(params: &StrategyV1, config: &'a ActionsConfig) -> &'a RetryConfig {
    config
        .connectors
        .get(&params.platform)
        .map_or(&config.webhook.retry, |c| &c.retry)
}

impl Deliver for PauseV1 {
    fn retry_policy<'a>(&self, config: &'a ActionsConfig) -> &'a RetryConfig {
        retry_policy(&self.0, config)
    }

    async fn deliver(&self, executors: &Executors, action: &Delivery) -> Outcome {
        call(executors, action, &self.0, true).await
    }
}

impl Deliver for ResumeV1 {
    fn retry_policy<'a>(&self, config: &'a ActionsConfig) -> &'a RetryConfig {
        retry_policy(&self.0, config)
    }

    async fn deliver(&self, executors: &Executors, action: &Delivery) -> Outcome {
        call(executors, action, &self.0, false).await
    }
}

async fn call(
    executors: &Executors,
    action: &Delivery,
    params: &StrategyV1,
    pause: bool,
) -> Outcome {
    let (store, clock) = (&executors.store, executors.clock.as_ref());
    let connectors = &executors.config.connectors;
    let retry = |e: crate::store::StoreError| Outcome::Retry {
        reason: e.to_string(),
        status: None,
        not_before: None,
    };
    let Some(connector) = connectors.get(&params.platform) else {
        return Outcome::Failed {
            reason: format!(
                "no strategy connector for platform '{}' (actions.connectors.{})",
                params.platform, params.platform
            ),
            status: None,
        };
    };
    if pause {
        match store
            .strategy_paused_by(&params.platform, &params.claim)
            .await
        {
            Ok(Some(rule)) => {
                return Outcome::Delivered {
                    status: None,
                    reply: Some(format!(
                        "skipped: the strategy of claim {} is already paused (by rule {rule})",
                        params.claim
                    )),
                };
            }
            Ok(None) => {}
            Err(e) => return retry(e),
        }
    }
    let path = if pause {
        &connector.pause_path
    } else {
        &connector.resume_path
    };
    let claim: String = url::form_urlencoded::byte_serialize(params.claim.as_bytes()).collect();
    let url = format!(
        "{}{}",
        connector.base_url.trim_end_matches('/'),
        path.replace("{claim}", &claim)
    );
    // The connector's host: a literal address is checked here, a name when it resolves.
    let parsed = match url::Url::parse(&url) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Outcome::Failed {
                reason: format!("connector url '{url}' is not a URL: {e}"),
                status: None,
            };
        }
    };
    if let Some(host) = parsed.host()
        && let Err(refused) = super::guard::check_host(&host, &executors.config.local_allowed())
    {
        return Outcome::Failed {
            reason: format!("connector {}: {refused}", params.platform),
            status: None,
        };
    }
    let mut request = executors
        .connector_http
        .post(parsed)
        .timeout(TIMEOUT)
        .header(super::webhook::IDEMPOTENCY_HEADER, &action.id)
        .json(&serde_json::json!({ "claim": params.claim, "reason": params.reason, "rule_id": action.rule_id, "action_id": action.id }));
    if let Some(token) = &connector.token {
        request = request.bearer_auth(token.expose());
    }
    let outcome = super::http::send(request, None, clock).await;
    if matches!(outcome, Outcome::Delivered { .. })
        && let Err(e) = store
            .set_strategy_state(
                &params.platform,
                &params.claim,
                pause,
                &action.rule_id,
                params.reason.as_deref(),
                clock.now(),
            )
            .await
    {
        // The platform did it; only our record is missing. Retrying the call is harmless
        // (same idempotency key) and records the state.
        return retry(e);
    }
    outcome
}
