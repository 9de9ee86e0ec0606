//! Receiving events: `POST /v1/events` (canonical JSON) and `POST /webhooks/{source}` (a
//! provider's own webhook, handed to its adapter). A 2xx answer means the event is committed.
//!
//! A body is read only once its size is reserved from the ingestion budget
//! (`server.ingest_bytes_in_flight`), and within `server.body_read_timeout`; the reservation is
//! held until the answer, so the bodies held at once (and what is parsed from them) stay bounded.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use serde_json::{Map, Value};
use std::net::IpAddr;
use tokio::sync::OwnedSemaphorePermit;

use super::AppState;
use super::rejections::{ClientAddr, Verdict};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::normalize::Event;
use crate::normalize::redact::without_values;
use crate::providers::{Inbound, Provider, ProviderError, canonical::CanonicalProvider};
use crate::store::{Ingest, NewDelivery, Stored};

/// Headers stored with every delivery. Each provider adds those it reads (signature, event
/// type, ids, timestamps: [`Provider::keeps_header`]); no other header is stored, so
/// credentials (`authorization`, `cookie`, `x-api-key`) and whatever else a client sends stay
/// out.
const STORED_HEADERS: &[&str] = &["content-type", "content-length", "user-agent"];

/// Bytes of each header value a refused delivery keeps.
const REFUSED_HEADER_BYTES: usize = 1024;

/// `POST /v1/events` and `POST /webhooks/canonical`: canonical events, from a token with the
/// `ingest` role (or anyone while the API is open).
#[utoipa::path(
    post,
    path = "/events",
    operation_id = "ingest_post_events",
    tag = "events",
    request_body(content = serde_json::Value, description = "see docs/api.md"),
    responses(
        (status = 201, description = "created (docs/api.md)", body = serde_json::Value),
        (status = 200, description = "duplicates, or several events: one receipt each", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["ingest"]))
)]
pub(super) async fn post_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request = Request {
        source: "api",
        hint: None,
        caller: Some(&caller),
        client,
        headers: &headers,
    };
    ingest(&state, &CanonicalProvider, request, body).await
}

pub(super) async fn post_webhook(
    State(state): State<AppState>,
    Path(source): Path<String>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request = Request {
        source: &source,
        hint: None,
        caller: None,
        client,
        headers: &headers,
    };
    webhook(&state, request, body).await
}

pub(super) async fn post_webhook_with_hint(
    State(state): State<AppState>,
    Path((source, hint)): Path<(String, String)>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request = Request {
        source: &source,
        hint: Some(&hint),
        caller: None,
        client,
        headers: &headers,
    };
    webhook(&state, request, body).await
}

/// What ingestion knows of a request besides its body.
#[derive(Clone, Copy)]
struct Request<'a> {
    source: &'a str,
    hint: Option<&'a str>,
    /// The token that posted canonical events; `None` for a platform's webhook.
    caller: Option<&'a Caller>,
    /// The peer's address, if the server gave it.
    client: Option<IpAddr>,
    headers: &'a HeaderMap,
}

async fn webhook(state: &AppState, request: Request<'_>, body: Body) -> Result<Response, ApiError> {
    let source = request.source;
    let providers = state.providers.clone();
    // Canonical events are posted with a token (`/webhooks/canonical` on the management
    // listener, routed apart); they are never taken here, unsigned, on a platform's path.
    let provider = providers
        .get(source)
        .filter(|p| p.name() != CanonicalProvider.name());
    let Some(provider) = provider else {
        discard(&state.limits, body);
        let known: Vec<&str> = providers
            .names()
            .filter(|n| *n != CanonicalProvider.name())
            .collect();
        return Err(ApiError::NotFound {
            code: "unknown_source",
            message: format!(
                "no adapter for source '{source}'; known sources: {}",
                known.join(", ")
            ),
        });
    };
    ingest(state, provider.as_ref(), request, body).await
}

/// Reserves the body's size from the ingestion budget, then reads it whole: 413 over
/// `max_body_bytes` (before reading when `Content-Length` says so), 503 when the budget is
/// spent (before reading), 408 when it arrives too slowly. The reservation is the caller's to
/// hold while it uses the body.
async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, OwnedSemaphorePermit), ApiError> {
    let limits = &state.limits;
    let too_large = ApiError::PayloadTooLarge {
        limit: limits.max_body_bytes,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let size = match declared {
        Some(n) if n > limits.max_body_bytes as u64 => {
            discard(limits, body);
            return Err(too_large);
        }
        Some(n) => n as usize,
        // Chunked: it may be as large as allowed.
        None => limits.max_body_bytes,
    };
    let Some(reserved) = limits.reserve_body(size) else {
        discard(limits, body);
        return Err(ApiError::Overloaded {
            what: "too many request bodies in flight",
        });
    };
    let read = Limited::new(body, limits.max_body_bytes).collect();
    match tokio::time::timeout(limits.body_read_timeout, read).await {
        Ok(Ok(collected)) => Ok((collected.to_bytes(), reserved)),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large),
        Ok(Err(e)) => Err(ApiError::BadRequest {
            code: "unreadable_body",
            message: format!("cannot read the request body: {e}"),
        }),
        Err(_) => Err(ApiError::BodyTimeout {
            seconds: limits.body_read_timeout.as_secs_f64().ceil() as u64,
        }),
    }
}

/// Reads and drops a body that is refused unread, in the background, up to `max_body_bytes`
/// and within `body_read_timeout`. A sender still sending when the answer comes would
/// otherwise have its connection reset, and might never see the answer; nothing is kept.
fn discard(limits: &super::Limits, body: Body) {
    let (max, timeout) = (limits.max_body_bytes, limits.body_read_timeout);
    tokio::spawn(async move {
        let mut body = Limited::new(body, max);
        let drain = async { while let Some(Ok(_)) = body.frame().await {} };
        let _ = tokio::time::timeout(timeout, drain).await;
    });
}

/// Verify, parse, store, answer. Deliveries that fail verification or parsing are stored too
/// (with the reason and no event, a prefix of the body, and within the limits per client of
/// `retention.rejected`), so an operator sees why a sender is refused. `caller` is the token
/// that posted canonical events (whose claimed sources it must allow); `None` for a
/// platform's signed webhook.
async fn ingest(
    state: &AppState,
    provider: &dyn Provider,
    request: Request<'_>,
    body: Body,
) -> Result<Response, ApiError> {
    let Request {
        source,
        hint,
        caller,
        headers,
        ..
    } = request;
    // Held until the answer: the body and everything parsed from it live until then.
    let (body, _reserved) = read_body(state, headers, body).await?;
    let received_at = state.clock.now();
    let inbound = Inbound {
        headers,
        body: &body,
        hint,
        received_at,
    };
    let mut delivery = NewDelivery {
        id: NewDelivery::new_id(),
        source: source.to_owned(),
        received_at,
        headers: headers_to_store(headers, provider),
        body: body.clone(),
        verification: "rejected",
        reason: None,
        body_size: None,
        token: caller.and_then(Caller::name).map(str::to_owned),
    };
    let verification = match provider.verify(&inbound) {
        Ok(v) => v,
        Err(e) => return Err(refuse(state, delivery, e, request.client).await),
    };
    delivery.verification = verification.as_str();
    let events = match provider.parse(&inbound).and_then(|events| {
        match events.iter().try_for_each(Event::storable) {
            Ok(()) => Ok(events),
            Err(reason) => Err(ProviderError::Invalid { reason }),
        }
    }) {
        Ok(events) => events,
        Err(e) => return Err(refuse(state, delivery, e, request.client).await),
    };
    if let Some(caller) = caller
        && let Some(event) = events
            .iter()
            .find(|e| !caller.may_claim(&e.source, &crate::providers::reserved_source))
    {
        let reason = caller.claim_refusal(&event.source);
        delivery.verification = "rejected";
        delivery.reason = Some(reason.clone());
        tracing::info!(delivery_id = %delivery.id, token = caller.name().unwrap_or_default(), "delivery refused: source not allowed");
        store_refused(state, delivery, request.client).await;
        return Err(ApiError::Forbidden(reason));
    }
    events.iter().for_each(|e| state.providers.note_unknown(e));
    let receipts: Vec<Receipt> = events.iter().map(Receipt::of).collect();
    let stored = state
        .writer
        .store(Ingest { delivery, events })
        .await
        .map_err(|e| ApiError::from(e.as_ref()))?;
    Ok(answer(receipts, stored))
}

/// Records a delivery that is answered with an error, then gives that error. The sender is
/// answered the whole reason; the stored one and the log say where and what kind of value,
/// without the values (they may be personal data).
async fn refuse(
    state: &AppState,
    mut delivery: NewDelivery,
    error: ProviderError,
    client: Option<IpAddr>,
) -> ApiError {
    let reason = without_values(&error.to_string());
    let (source, id) = (delivery.source.clone(), delivery.id.clone());
    // Refused after its signature passed (a body that does not parse) is refused all the same.
    delivery.verification = "rejected";
    delivery.reason = Some(reason.clone());
    if store_refused(state, delivery, client).await {
        tracing::info!(%source, delivery_id = %id, %reason, "delivery refused");
    }
    ApiError::from(error)
}

/// Stores a refused delivery (its reason set) within `retention.rejected`: a prefix of its
/// body, and only while its client is under the limit per minute; past it the delivery is only
/// counted. Returns whether it was stored (or tried to be).
async fn store_refused(
    state: &AppState,
    mut delivery: NewDelivery,
    client: Option<IpAddr>,
) -> bool {
    if state.rejections.admit(client, delivery.received_at) == Verdict::Drop {
        return false;
    }
    delivery.truncate(state.rejections.body_bytes(), REFUSED_HEADER_BYTES);
    if let Err(e) = state
        .writer
        .store(Ingest {
            delivery,
            events: Vec::new(),
        })
        .await
    {
        tracing::warn!(error = %e, "cannot record a refused delivery");
    }
    true
}

/// What the sender is told about one event.
#[derive(Serialize)]
struct Receipt {
    status: &'static str,
    id: String,
    #[serde(rename = "type")]
    kind: String,
    source: String,
    source_event_id: String,
}

impl Receipt {
    fn of(event: &Event) -> Self {
        Self {
            status: "",
            id: String::new(),
            kind: event.kind.to_string(),
            source: event.source.clone(),
            source_event_id: event.source_event_id.clone(),
        }
    }

    fn with(mut self, stored: &Stored) -> Self {
        let (status, id) = match stored {
            Stored::New(id) => ("stored", id),
            Stored::Duplicate(id) => ("duplicate", id),
        };
        self.status = status;
        self.id = id.to_string();
        self
    }
}

/// One event: 201 when stored, 200 when it was a duplicate. Several: 200 with one receipt each.
fn answer(receipts: Vec<Receipt>, stored: Vec<Stored>) -> Response {
    if let [one] = stored.as_slice() {
        let status = if matches!(one, Stored::New(_)) {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let receipt = receipts
            .into_iter()
            .next()
            .expect("one receipt per stored event");
        return (status, Json(receipt.with(one))).into_response();
    }
    let new = stored
        .iter()
        .filter(|s| matches!(s, Stored::New(_)))
        .count();
    let receipts: Vec<Receipt> = receipts
        .into_iter()
        .zip(&stored)
        .map(|(r, s)| r.with(s))
        .collect();
    Json(serde_json::json!({ "stored": new, "duplicates": stored.len() - new, "events": receipts }))
        .into_response()
}

/// The request's headers that are kept (see [`STORED_HEADERS`]) as a JSON object; repeated
/// headers become arrays.
fn headers_to_store(headers: &HeaderMap, provider: &dyn Provider) -> Value {
    let mut map = Map::new();
    for name in headers.keys() {
        let name_text = name.as_str();
        if !STORED_HEADERS.contains(&name_text) && !provider.keeps_header(name_text) {
            continue;
        }
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let value = if values.len() == 1 {
            values.into_iter().next().expect("one value")
        } else {
            Value::Array(values)
        };
        map.insert(name.as_str().to_owned(), value);
    }
    Value::Object(map)
}
