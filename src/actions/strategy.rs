//! `pause_strategy` / `resume_strategy`: a call to the platform that owns the claim's collection
//! strategy, through the connector configured for that platform. Signalbox keeps each claim's
//! state (paused by which rule, when, why) and skips a pause already in force.
//!
//! The call: `POST {base_url}{pause_path | resume_path}` (`{claim}` URL-encoded in the path),
//! `Authorization: Bearer <token>`, `Idempotency-Key: <action id>`, and the JSON body
//! `{"claim": ..., "reason": ..., "rule_id": ..., "action_id": ...}`. Any 2xx is success.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::ConnectorConfig;
use crate::outbox::{OutboxAction, Outcome};
use crate::rules::config::StrategyConfig;
use crate::store::Store;

const TIMEOUT: Duration = Duration::from_secs(10);

pub async fn deliver(
    http: &reqwest::Client,
    connectors: &BTreeMap<String, ConnectorConfig>,
    store: &Store,
    action: &OutboxAction,
    params: &StrategyConfig,
    pause: bool,
    clock: &dyn crate::clock::Clock,
) -> Outcome {
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
    let mut request = http
        .post(&url)
        .timeout(TIMEOUT)
        .header(super::webhook::IDEMPOTENCY_HEADER, &action.id)
        .json(&serde_json::json!({ "claim": params.claim, "reason": params.reason, "rule_id": action.rule_id, "action_id": action.id }));
    if let Some(token) = &connector.token {
        request = request.bearer_auth(token.expose());
    }
    let outcome = super::send(request, None, clock).await;
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
