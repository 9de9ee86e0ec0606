//! Action executors: the code that actually calls a webhook, sends an email, pauses or resumes
//! a strategy, or emits a follow-up event. Each returns an [`Outcome`] decided where the
//! failure happens; the dispatcher (`crate::outbox::worker`) only acts on it.

pub mod email;
pub mod strategy;
pub mod webhook;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::clock::{Clock, SharedClock};
use crate::config::{ActionsConfig, RetryConfig};
use crate::normalize::{Event, EventId, EventType, Subject};
use crate::outbox::{OutboxAction, Outcome};
use crate::rules::config::{ActionConfig, EmitConfig};
use crate::store::{Ingest, NewDelivery, Store};

/// Everything needed to run actions, built once at start.
pub struct Executors {
    store: Store,
    config: ActionsConfig,
    http: reqwest::Client,
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
        let http = reqwest::Client::builder()
            .user_agent(concat!("signalbox/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let mailer = email::Mailer::new(&config.email)?;
        Ok(Self {
            store,
            config,
            http,
            mailer,
            stored,
            clock,
        })
    }

    /// The action kinds this instance can deliver (email only with an SMTP server configured):
    /// other kinds wait in the outbox, never lost.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds = vec!["webhook", "pause_strategy", "resume_strategy", "emit"];
        if self.mailer.is_some() {
            kinds.push("email");
        }
        kinds
    }

    /// The retry policy of an action's kind (for strategy calls, its platform's connector, named
    /// by the target planned with the action: `strategy:<platform>`).
    pub fn retry_policy(&self, action: &OutboxAction) -> &RetryConfig {
        match action.kind.as_str() {
            "email" => &self.config.email.retry,
            "emit" => &self.config.emit_retry,
            "pause_strategy" | "resume_strategy" => action
                .target
                .strip_prefix("strategy:")
                .and_then(|platform| self.config.connectors.get(platform))
                .map_or(&self.config.webhook.retry, |c| &c.retry),
            _ => &self.config.webhook.retry,
        }
    }

    pub async fn execute(&self, action: &OutboxAction) -> Outcome {
        let config = match action.payload.action() {
            Ok(config) => config,
            Err(reason) => {
                return Outcome::Failed {
                    reason,
                    status: None,
                };
            }
        };
        match config {
            ActionConfig::Webhook(w) => {
                webhook::deliver(
                    &self.http,
                    &self.config.webhook,
                    &self.store,
                    action,
                    &w,
                    self.clock.as_ref(),
                )
                .await
            }
            ActionConfig::Email(e) => match &self.mailer {
                Some(mailer) => mailer.send(action, &e).await,
                None => Outcome::Failed {
                    reason: "no SMTP server configured (actions.email.host)".into(),
                    status: None,
                },
            },
            ActionConfig::PauseStrategy(ref s) | ActionConfig::ResumeStrategy(ref s) => {
                let pause = matches!(config, ActionConfig::PauseStrategy(_));
                strategy::deliver(
                    &self.http,
                    &self.config.connectors,
                    &self.store,
                    action,
                    s,
                    pause,
                    self.clock.as_ref(),
                )
                .await
            }
            ActionConfig::Emit(e) => self.emit(action, &e).await,
        }
    }

    /// Stores the follow-up event (source `signalbox`, keyed by the action's id, so a retried
    /// emit stores it once), one chain step deeper than the event that planned it.
    async fn emit(&self, action: &OutboxAction, emit: &EmitConfig) -> Outcome {
        let retry = |e: crate::store::StoreError| Outcome::Retry {
            reason: e.to_string(),
            status: None,
            not_before: None,
        };
        let parent = match self.store.get_event(&action.event_id).await {
            Ok(Some(parent)) => parent.event,
            Ok(None) => {
                return Outcome::Failed {
                    reason: format!("event {} not found", action.event_id),
                    status: None,
                };
            }
            Err(e) => return retry(e),
        };
        let depth = parent.chain_depth + 1;
        if depth > self.config.max_chain_depth {
            return Outcome::Failed {
                reason: format!(
                    "chain depth limit reached: this would be the {depth}th emitted event in a row (actions.max_chain_depth = {})",
                    self.config.max_chain_depth
                ),
                status: None,
            };
        }
        let kind = match EventType::parse(&emit.event_type) {
            Ok(kind) => kind,
            Err(reason) => {
                return Outcome::Failed {
                    reason,
                    status: None,
                };
            }
        };
        let subject: Subject =
            match serde_json::to_value(&emit.subject).and_then(serde_json::from_value) {
                Ok(subject) => subject,
                Err(e) => {
                    return Outcome::Failed {
                        reason: format!("subject: {e}"),
                        status: None,
                    };
                }
            };
        let now = self.clock.now();
        let params = serde_json::to_value(emit).expect("emit configs serialize");
        let event = Event {
            id: EventId::new(),
            source: "signalbox".into(),
            source_event_id: action.id.clone(),
            kind,
            source_type: None,
            occurred_at: now,
            received_at: now,
            subject,
            amount: None,
            data: emit.data.clone().unwrap_or_else(|| serde_json::json!({})),
            payload: serde_json::json!({ "emitted_by": { "action": action.id, "rule": action.rule_id, "event": action.event_id }, "params": params }),
            chain_depth: depth,
        };
        let delivery = NewDelivery {
            id: NewDelivery::new_id(),
            source: "signalbox".into(),
            received_at: now,
            headers: serde_json::json!({}),
            body: bytes::Bytes::from(serde_json::to_vec(&event.payload).expect("values serialize")),
            verification: "internal",
            reason: None,
        };
        match self
            .store
            .insert_batch(&[Ingest {
                delivery,
                events: vec![event],
            }])
            .await
        {
            Ok(stored) => {
                self.stored.notify_one();
                let id = stored.first().and_then(|s| s.first()).map(|s| match s {
                    crate::store::Stored::New(id) | crate::store::Stored::Duplicate(id) => {
                        id.to_string()
                    }
                });
                Outcome::Delivered {
                    status: None,
                    reply: id,
                }
            }
            Err(e) => retry(e),
        }
    }
}

/// Shared HTTP conventions for webhooks and strategy connectors: what a response means.
pub(crate) fn http_outcome(
    status: reqwest::StatusCode,
    retry_after: Option<&reqwest::header::HeaderValue>,
    success: Option<&[u16]>,
    body: String,
    now: DateTime<Utc>,
) -> Outcome {
    let code = status.as_u16();
    let delivered = match success {
        Some(codes) => codes.contains(&code),
        None => status.is_success(),
    };
    let reply = Some(body.chars().take(500).collect::<String>()).filter(|b| !b.is_empty());
    if delivered {
        return Outcome::Delivered {
            status: Some(code),
            reply,
        };
    }
    if code == 429 || code == 408 || status.is_server_error() {
        let not_before = retry_after
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        return Outcome::Retry {
            reason: format!("target answered {status}"),
            status: Some(code),
            not_before,
        };
    }
    Outcome::Failed {
        reason: format!("target answered {status}: {}", reply.unwrap_or_default()),
        status: Some(code),
    }
}

/// `Retry-After`: seconds, or an HTTP date.
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<std::time::Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(std::time::Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

/// Sends a request and says what its answer means (shared by webhooks and strategy calls).
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    success: Option<&[u16]>,
    clock: &dyn Clock,
) -> Outcome {
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .cloned();
            http_outcome(
                status,
                retry_after.as_ref(),
                success,
                response.text().await.unwrap_or_default(),
                clock.now(),
            )
        }
        Err(e) => request_error(&e),
    }
}

/// A request error: timeouts and connection failures are worth retrying.
fn request_error(e: &reqwest::Error) -> Outcome {
    let reason = if e.is_timeout() {
        "timed out waiting for the target".to_owned()
    } else if e.is_connect() {
        format!(
            "cannot connect: {}",
            std::error::Error::source(e).map_or_else(|| e.to_string(), ToString::to_string)
        )
    } else {
        e.to_string()
    };
    if e.is_builder() {
        Outcome::Failed {
            reason,
            status: None,
        }
    } else {
        Outcome::Retry {
            reason,
            status: None,
            not_before: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_decide_retry_or_failure() {
        let outcome = |code: u16| {
            http_outcome(
                reqwest::StatusCode::from_u16(code).unwrap(),
                None,
                None,
                String::new(),
                DateTime::UNIX_EPOCH,
            )
        };
        assert!(matches!(
            outcome(200),
            Outcome::Delivered {
                status: Some(200),
                ..
            }
        ));
        assert!(matches!(outcome(204), Outcome::Delivered { .. }));
        assert!(matches!(outcome(500), Outcome::Retry { .. }));
        assert!(matches!(outcome(503), Outcome::Retry { .. }));
        assert!(matches!(outcome(429), Outcome::Retry { .. }));
        assert!(matches!(outcome(400), Outcome::Failed { .. }));
        assert!(matches!(outcome(404), Outcome::Failed { .. }));
        let only_202 = http_outcome(
            reqwest::StatusCode::OK,
            None,
            Some(&[202]),
            String::new(),
            DateTime::UNIX_EPOCH,
        );
        assert!(
            matches!(only_202, Outcome::Failed { .. }),
            "a status outside `success` is not delivered"
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(
            parse_retry_after("120", DateTime::UNIX_EPOCH),
            Some(std::time::Duration::from_secs(120))
        );
        let now = DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let later = (now + chrono::Duration::seconds(90)).to_rfc2822();
        assert_eq!(parse_retry_after(&later, now).unwrap().as_secs(), 90);
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
