//! `webhook`: an HTTP request to a URL, signed, with the action's id as `Idempotency-Key`.
//!
//! Signature: `Signalbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with
//! one `v1=` per configured secret (so receivers can rotate). See docs/actions.md.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::retry::RetryConfig;
use super::{ActionsConfig, Deliver, Delivery, Executors, Outcome, Params, guard, secrets};
use crate::config::Secret;
use crate::providers::signature::hmac_sha256;

/// A webhook action as the rule file writes it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A JSON body (a mapping or list, templates in its strings) or a text body (a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// How long to wait for an answer, e.g. `10s` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Statuses that count as delivered; default any 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<Vec<u16>>,
}

fn default_method() -> String {
    "POST".into()
}

/// A planned webhook as the outbox keeps it (payload version 1): frozen, whatever the rule
/// format becomes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WebhookV1 {
    pub url: String,
    pub method: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<Vec<u16>>,
}

/// Operator settings of webhook actions (`actions.webhook`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Secrets signing every webhook (`Signalbox-Signature`); several while rotating.
    pub signing_secrets: Vec<Secret>,
    /// Hosts webhooks may go to. Empty: any public host. A listed host may also be local
    /// (loopback, private ...), as with `actions.allowed_hosts`.
    pub allowed_hosts: Vec<String>,
    pub retry: RetryConfig,
}

impl Params for WebhookConfig {
    type Stored = WebhookV1;

    fn check(&self, skip: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut problems = Vec::new();
        if !skip(&self.url) {
            match url::Url::parse(&self.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    if let Some(segment) = dot_segment(&self.url) {
                        problems.push(format!(
                            "url '{}' has a path segment '{segment}', which would move the request to another path: a value in a URL may not be '.' or '..'",
                            self.url
                        ));
                    }
                }
                Ok(u) => problems.push(format!(
                    "url '{}' must be http or https with a host (found scheme '{}')",
                    self.url,
                    u.scheme()
                )),
                Err(e) => problems.push(format!("url '{}' is not a URL: {e}", self.url)),
            }
        }
        if !["GET", "POST", "PUT", "PATCH", "DELETE"]
            .contains(&self.method.to_ascii_uppercase().as_str())
        {
            problems.push(format!(
                "method '{}' is not one of GET, POST, PUT, PATCH, DELETE",
                self.method
            ));
        }
        for (name, value) in &self.headers {
            if axum::http::HeaderName::from_str(name).is_err() {
                problems.push(format!("header name '{name}' is not valid"));
            }
            super::one_line(&format!("header {name}"), value, &mut problems);
            if let Err(e) = secrets::references(value) {
                problems.push(format!("header {name}: {e}"));
            }
        }
        if let Some(timeout) = &self.timeout
            && humantime::parse_duration(timeout).is_err()
        {
            problems.push(format!("timeout '{timeout}' is not a duration such as 10s"));
        }
        if let Some(codes) = &self.success
            && codes.iter().any(|c| !(100..600).contains(c))
        {
            problems.push("success statuses must be between 100 and 599".into());
        }
        problems
    }

    /// The host: webhooks to one host share its concurrency limit.
    fn target(&self) -> String {
        url::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "webhook".into())
    }

    fn stored(&self) -> WebhookV1 {
        WebhookV1 {
            url: self.url.clone(),
            method: self.method.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
            timeout: self.timeout.clone(),
            success: self.success.clone(),
        }
    }
}

impl Deliver for WebhookV1 {
    fn retry_policy<'a>(&self, config: &'a ActionsConfig) -> &'a RetryConfig {
        &config.webhook.retry
    }

    async fn deliver(&self, executors: &Executors, action: &Delivery) -> Outcome {
        call(executors, action, self).await
    }
}

pub const SIGNATURE_HEADER: &str = "signalbox-signature";
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A `.` or `..` segment (also written `%2e`) in the path of `url` as written: URL parsing
/// resolves them, so `/accounts/{{ id }}/x` with the id `..` would call `/x`.
pub fn dot_segment(url: &str) -> Option<String> {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("", |at| &after_scheme[at..]);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.split(['/', '\\'])
        .find(|segment| {
            let plain = segment.to_ascii_lowercase().replace("%2e", ".");
            plain == "." || plain == ".."
        })
        .map(str::to_owned)
}

/// Why a URL may not be called, if it may not: hosts outside `actions.webhook.allowed_hosts`
/// when it is set, and literal local addresses (and `*.localhost`) unless allow-listed there
/// or in `actions.allowed_hosts`. Names are checked again when they resolve (see
/// [`super::guard`]).
pub fn refuse_target(url: &url::Url, config: &ActionsConfig) -> Option<String> {
    let host = url.host()?;
    let settings = &config.webhook;
    let only = guard::AllowList::new(&settings.allowed_hosts, "actions.webhook.allowed_hosts");
    let text = match &host {
        url::Host::Domain(d) => (*d).to_owned(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    };
    if !settings.allowed_hosts.is_empty() && !only.contains(&text) {
        return Some(format!(
            "host '{text}' is not in actions.webhook.allowed_hosts"
        ));
    }
    if only.contains(&text) {
        return None;
    }
    guard::check_host(&host, &config.local_allowed())
        .err()
        .map(|e| e.to_string())
}

/// `t=<seconds>,v1=<hex>[,v1=<hex>...]` over `"<t>.<body>"`.
pub fn signature(secrets: &[Secret], timestamp: i64, body: &[u8]) -> String {
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

async fn call(executors: &Executors, action: &Delivery, webhook: &WebhookV1) -> Outcome {
    let settings = &executors.config.webhook;
    let failed = |reason: String| Outcome::Failed {
        reason,
        status: None,
    };
    let url = match url::Url::parse(&webhook.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        _ => return failed(format!("url '{}' is not an http(s) URL", webhook.url)),
    };
    if let Some(reason) = refuse_target(&url, &executors.config) {
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
        None => match executors.store.get_event(&action.event_id).await {
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
    let timestamp = executors.clock.now().timestamp();
    let mut request = executors
        .http
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
    // Secrets are read now, for this request only: what is stored keeps the references.
    let source = secrets::EnvAndDir {
        dir: executors.config.secrets_dir.as_deref(),
    };
    let mut used = Vec::new();
    for (name, value) in &webhook.headers {
        let (value, mut values) = match secrets::resolve(value, &source) {
            Ok(resolved) => resolved,
            Err(reason) => return failed(reason),
        };
        let mut header = match reqwest::header::HeaderValue::from_str(&value) {
            Ok(header) => header,
            Err(_) if !values.is_empty() => {
                return failed(format!(
                    "header {name}: a secret it references is not a valid header value (one line of visible characters)"
                ));
            }
            Err(_) => return failed(format!("header {name}: not a valid header value")),
        };
        if !values.is_empty() {
            header.set_sensitive(true);
        }
        used.append(&mut values);
        request = request.header(name, header);
    }
    let outcome = super::http::send(
        request.body(body),
        webhook.success.as_deref(),
        executors.clock.as_ref(),
    )
    .await;
    if used.is_empty() {
        return outcome;
    }
    // A target may echo a header back: its secrets stay out of the recorded reply.
    match outcome {
        Outcome::Delivered { status, reply } => Outcome::Delivered {
            status,
            reply: reply.map(|r| secrets::redact(&r, &used)),
        },
        Outcome::Retry {
            reason,
            status,
            not_before,
        } => Outcome::Retry {
            reason: secrets::redact(&reason, &used),
            status,
            not_before,
        },
        Outcome::Failed { reason, status } => Outcome::Failed {
            reason: secrets::redact(&reason, &used),
            status,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn config(webhook_hosts: &[&str], hosts: &[&str]) -> ActionsConfig {
        let list = |h: &[&str]| h.iter().map(|s| s.to_string()).collect();
        let mut config = ActionsConfig {
            allowed_hosts: list(hosts),
            ..ActionsConfig::default()
        };
        config.webhook.allowed_hosts = list(webhook_hosts);
        config
    }

    #[test]
    fn private_and_unlisted_targets_are_refused() {
        let url = |u: &str| url::Url::parse(u).unwrap();
        assert!(refuse_target(&url("https://crm.example.com/x"), &config(&[], &[])).is_none());
        for private in [
            "http://127.0.0.1:8080/",
            "http://app.localhost/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://169.254.169.254/latest",
        ] {
            assert!(
                refuse_target(&url(private), &config(&[], &[])).is_some(),
                "{private}"
            );
        }
        assert!(
            refuse_target(&url("http://127.0.0.1:9/"), &config(&["127.0.0.1"], &[])).is_none(),
            "allow-listed for webhooks"
        );
        assert!(
            refuse_target(&url("http://127.0.0.1:9/"), &config(&[], &["127.0.0.1"])).is_none(),
            "allow-listed for all outgoing requests"
        );
        assert!(
            refuse_target(
                &url("https://evil.example.com/"),
                &config(&["crm.example.com"], &[])
            )
            .unwrap()
            .contains("not in actions.webhook.allowed_hosts")
        );
        assert!(
            refuse_target(
                &url("http://[::ffff:127.0.0.1]:9/"),
                &config(&[], &["127.0.0.1"])
            )
            .unwrap()
            .contains("loopback"),
            "another spelling of a listed address is not listed"
        );
    }

    #[test]
    fn malformed_secret_references_in_headers_are_load_errors() {
        let mut webhook: WebhookConfig =
            serde_json::from_value(serde_json::json!({"url": "https://crm.example.com/"})).unwrap();
        webhook
            .headers
            .insert("authorization".into(), "Bearer ${secret:CRM_TOKEN}".into());
        assert_eq!(webhook.check(&|_| false), Vec::<String>::new());
        webhook
            .headers
            .insert("x-key".into(), "${secret:crm-token}".into());
        let problems = webhook.check(&|_| false);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("header x-key: secret reference '${secret:crm-token}'"),
            "{problems:?}"
        );
    }

    #[test]
    fn dot_segments_in_the_path_are_found() {
        for url in [
            "https://crm.example.com/api/accounts/../preferences",
            "https://crm.example.com/api/accounts/./preferences",
            "https://crm.example.com/a/%2e%2E/b",
            "https://crm.example.com/a/%2e",
            "https://crm.example.com/a/..",
        ] {
            assert!(dot_segment(url).is_some(), "{url}");
        }
        for url in [
            "https://crm.example.com/a/.../b",
            "https://crm.example.com/a/b.c/d?x=../y",
            "https://crm.example.com/a#..",
            "https://crm.example.com",
        ] {
            assert_eq!(dot_segment(url), None, "{url}");
        }
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
