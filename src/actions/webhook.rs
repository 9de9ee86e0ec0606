//! `webhook`: an HTTP request to a URL, signed, with the action's id as `Idempotency-Key`.
//!
//! Signature: `Signalbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with
//! one `v1=` per configured secret (so receivers can rotate). See docs/actions.md.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::WebhookSettings;
use crate::outbox::{OutboxAction, Outcome};
use crate::providers::signature::hmac_sha256;
use crate::rules::config::WebhookConfig;
use crate::store::Store;

pub const SIGNATURE_HEADER: &str = "signalbox-signature";
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a URL may not be called, if it may not: hosts outside the allow-list, and loopback or
/// private addresses unless allow-listed.
pub fn refuse_target(url: &url::Url, settings: &WebhookSettings) -> Option<String> {
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let listed = settings
        .allowed_hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(&host));
    if !settings.allowed_hosts.is_empty() && !listed {
        return Some(format!(
            "host '{host}' is not in actions.webhook.allowed_hosts"
        ));
    }
    let private = host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| match ip {
            IpAddr::V4(v4) => {
                v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
            }
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00
            }
        });
    (private && !listed).then(|| format!("host '{host}' is a loopback or private address; list it in actions.webhook.allowed_hosts to allow it"))
}

/// `t=<seconds>,v1=<hex>[,v1=<hex>...]` over `"<t>.<body>"`.
pub fn signature(secrets: &[crate::config::Secret], timestamp: i64, body: &[u8]) -> String {
    let signed = format!("{timestamp}.");
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        header += &format!(
            ",v1={}",
            hex::encode(hmac_sha256(
                secret.expose().as_bytes(),
                &[signed.as_bytes(), body]
            ))
        );
    }
    header
}

pub async fn deliver(
    http: &reqwest::Client,
    settings: &WebhookSettings,
    store: &Store,
    action: &OutboxAction,
    webhook: &WebhookConfig,
    clock: &dyn crate::clock::Clock,
) -> Outcome {
    let failed = |reason: String| Outcome::Failed {
        reason,
        status: None,
    };
    let url = match url::Url::parse(&webhook.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        _ => return failed(format!("url '{}' is not an http(s) URL", webhook.url)),
    };
    if let Some(reason) = refuse_target(&url, settings) {
        return failed(reason);
    }
    let method = match reqwest::Method::from_bytes(webhook.method.to_ascii_uppercase().as_bytes()) {
        Ok(m) => m,
        Err(_) => return failed(format!("method '{}' is not valid", webhook.method)),
    };
    let timeout = match &webhook.timeout {
        Some(t) => match humantime::parse_duration(t) {
            Ok(t) => t,
            Err(e) => return failed(format!("timeout '{t}': {e}")),
        },
        None => DEFAULT_TIMEOUT,
    };
    // The body: the rule's (JSON, or text for a string), else the event that triggered it.
    let (body, content_type) = match &webhook.body {
        Some(serde_json::Value::String(text)) => {
            (text.clone().into_bytes(), "text/plain; charset=utf-8")
        }
        Some(value) => (
            serde_json::to_vec(value).expect("values serialize"),
            "application/json",
        ),
        None => match store.get_event(&action.event_id).await {
            Ok(Some(stored)) => {
                let body = serde_json::json!({ "action_id": action.id, "rule_id": action.rule_id, "event": stored.event.view() });
                (
                    serde_json::to_vec(&body).expect("values serialize"),
                    "application/json",
                )
            }
            Ok(None) => return failed(format!("event {} not found", action.event_id)),
            Err(e) => {
                return Outcome::Retry {
                    reason: e.to_string(),
                    status: None,
                    not_before: None,
                };
            }
        },
    };
    let timestamp = clock.now().timestamp();
    let mut request = http
        .request(method, url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .header(IDEMPOTENCY_HEADER, &action.id)
        .header("signalbox-rule", &action.rule_id)
        .header("signalbox-event", &action.event_id);
    if !settings.signing_secrets.is_empty() {
        request = request.header(
            SIGNATURE_HEADER,
            signature(&settings.signing_secrets, timestamp, &body),
        );
    }
    for (name, value) in &webhook.headers {
        request = request.header(name, value);
    }
    super::send(request.body(body), webhook.success.as_deref(), clock).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn settings(allowed: &[&str]) -> WebhookSettings {
        WebhookSettings {
            allowed_hosts: allowed.iter().map(|s| s.to_string()).collect(),
            ..WebhookSettings::default()
        }
    }

    #[test]
    fn private_and_unlisted_targets_are_refused() {
        let url = |u: &str| url::Url::parse(u).unwrap();
        assert!(refuse_target(&url("https://crm.example.com/x"), &settings(&[])).is_none());
        for private in [
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://[::1]/",
            "http://169.254.169.254/latest",
        ] {
            assert!(
                refuse_target(&url(private), &settings(&[])).is_some(),
                "{private}"
            );
        }
        assert!(
            refuse_target(&url("http://127.0.0.1:9/"), &settings(&["127.0.0.1"])).is_none(),
            "allow-listed"
        );
        assert!(
            refuse_target(
                &url("https://evil.example.com/"),
                &settings(&["crm.example.com"])
            )
            .unwrap()
            .contains("not in actions.webhook.allowed_hosts")
        );
    }

    #[test]
    fn signatures_cover_timestamp_and_body_for_each_secret() {
        let secrets = [Secret::new("new".into()), Secret::new("old".into())];
        let header = signature(&secrets, 1_700_000_000, b"{\"a\":1}");
        let expected_new = hex::encode(hmac_sha256(b"new", &[b"1700000000.", b"{\"a\":1}"]));
        let expected_old = hex::encode(hmac_sha256(b"old", &[b"1700000000.{\"a\":1}"]));
        assert_eq!(
            header,
            format!("t=1700000000,v1={expected_new},v1={expected_old}")
        );
    }
}
