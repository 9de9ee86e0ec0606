//! HTTP conventions shared by the kinds that call HTTP targets (webhooks, strategy
//! connectors): the one client, what an answer means, and which failures are worth a retry.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Outcome;
use super::guard::{AllowList, GuardedResolver};
use crate::clock::Clock;

/// Most characters of a target's answer kept with an attempt.
const REPLY_CHARS: usize = 500;

/// Most bytes of a target's answer read. The rest is never read: the connection is dropped,
/// so a target answering without end costs this much, not its size.
const REPLY_READ_BYTES: usize = 64 * 1024;

/// An HTTP client of an engine: no redirects followed, Signalbox's user agent, every name
/// resolved through the guard (local addresses refused unless the host is in `allowed`), and
/// no proxy from the environment (through a proxy, the address connected to could not be
/// checked).
pub(crate) fn client(allowed: AllowList) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("signalbox/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(GuardedResolver::new(allowed))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// What a response means: delivered (any 2xx, or one of `success`), worth a retry (408, 429,
/// 5xx, with the target's `Retry-After`), or failed for good.
pub(crate) fn outcome(
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
    let reply = Some(body.chars().take(REPLY_CHARS).collect::<String>()).filter(|b| !b.is_empty());
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
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

/// Sends a request and says what its answer means.
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
            outcome(
                status,
                retry_after.as_ref(),
                success,
                read_reply(response).await,
                clock.now(),
            )
        }
        Err(e) => request_error(&e),
    }
}

/// The start of a response's body, chunk by chunk, up to [`REPLY_READ_BYTES`]; what arrived
/// before an error (a timeout while reading) is kept.
async fn read_reply(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < REPLY_READ_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = REPLY_READ_BYTES - bytes.len();
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A request error: timeouts and connection failures are worth retrying; a target the guard
/// refused is not.
fn request_error(e: &reqwest::Error) -> Outcome {
    let refusal = super::guard::refusal_in(e);
    if let Some(refused) = refusal.filter(|r| r.is_permanent()) {
        return Outcome::Failed {
            reason: refused.to_string(),
            status: None,
        };
    }
    let reason = if e.is_timeout() {
        "timed out waiting for the target".to_owned()
    } else if let Some(lookup) = refusal {
        // A name that does not resolve (yet): the guard's words, worth a retry.
        lookup.to_string()
    } else if e.is_connect() {
        // The innermost cause says what happened (`Connection refused`), not hyper's wrapper.
        let mut cause: &dyn std::error::Error = e;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        format!("cannot connect: {cause}")
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
        let answer = |code: u16| {
            outcome(
                reqwest::StatusCode::from_u16(code).unwrap(),
                None,
                None,
                String::new(),
                DateTime::UNIX_EPOCH,
            )
        };
        assert!(matches!(
            answer(200),
            Outcome::Delivered {
                status: Some(200),
                ..
            }
        ));
        assert!(matches!(answer(204), Outcome::Delivered { .. }));
        assert!(matches!(answer(500), Outcome::Retry { .. }));
        assert!(matches!(answer(503), Outcome::Retry { .. }));
        assert!(matches!(answer(429), Outcome::Retry { .. }));
        assert!(matches!(answer(400), Outcome::Failed { .. }));
        assert!(matches!(answer(404), Outcome::Failed { .. }));
        let only_202 = outcome(
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
            Some(Duration::from_secs(120))
        );
        let now = DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let later = (now + chrono::Duration::seconds(90)).to_rfc2822();
        assert_eq!(parse_retry_after(&later, now).unwrap().as_secs(), 90);
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
