//! The token check in front of every management route: 401 without a known token, 403
//! without the route's role. Requests that change something are recorded with their token.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::auth::{Caller, Denied, Role};
use crate::error::ApiError;
use crate::store::TokenUse;

/// The state of one route's check: the engine's, and the role the route needs.
#[derive(Clone)]
pub(super) struct Gate {
    pub state: AppState,
    pub role: Role,
}

/// Lets the request through when its token has the gate's role, with the [`Caller`] in its
/// extensions (handlers that post events read it).
pub(super) async fn check(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    let tokens = &gate.state.tokens;
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let caller = match tokens.authorize(authorization, gate.role).await {
        Ok(caller) => caller,
        Err(Denied::Unauthenticated(why)) => {
            metrics::counter!("signalbox_api_refused_total", "reason" => "unauthenticated")
                .increment(1);
            return ApiError::Unauthenticated(why.into()).into_response();
        }
        Err(Denied::Forbidden(why)) => {
            metrics::counter!("signalbox_api_refused_total", "reason" => "forbidden").increment(1);
            let path = request
                .extensions()
                .get::<axum::extract::OriginalUri>()
                .map_or_else(|| request.uri().path(), |uri| uri.path());
            tracing::info!(%path, reason = %why, "request refused: role");
            return ApiError::Forbidden(why).into_response();
        }
    };
    let Caller::Token(token) = &caller else {
        if let Err(why) = from_this_machine(request.headers()) {
            metrics::counter!("signalbox_api_refused_total", "reason" => "cross_site").increment(1);
            tracing::info!(reason = %why, "request to the open API refused");
            return ApiError::Forbidden(why).into_response();
        }
        request.extensions_mut().insert(caller);
        return next.run(request).await;
    };
    let token = token.clone();
    // The path as sent (`/api/v1/...`), not as the nested router sees it.
    let path = request
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| request.uri().path(), |uri| uri.path())
        .to_owned();
    let method = request.method().clone();
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    let now = gate.state.clock.now();
    if token.origin == "store" && tokens.due_touch(&token.name, now) {
        let store = gate.state.store.clone();
        let name = token.name.clone();
        // Off the request's path: a slow store does not slow the answer.
        tokio::spawn(async move {
            if let Err(e) = store.touch_token(&name, now).await {
                tracing::debug!(error = %e, "cannot note a token's use");
            }
        });
    }
    let status = response.status().as_u16();
    let changes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if changes && gate.role != Role::Ingest {
        let used = TokenUse {
            at: now,
            token: token.name.clone(),
            method: method.to_string(),
            path: path.clone(),
            status,
        };
        if let Err(e) = gate.state.store.record_token_use(&used).await {
            tracing::warn!(error = %e, token = %token.name, %path, "cannot record a token's use");
        }
        tracing::info!(token = %token.name, %method, %path, status, "token used");
    } else {
        tracing::debug!(token = %token.name, %method, %path, status, "token used");
    }
    response
}

/// While the API is open (no token exists), whether a request comes from a program on this
/// machine rather than from a web page a browser here has loaded: its `Host` is an address or
/// `localhost` (not a name a page's site could point here, DNS rebinding), and an `Origin`, if
/// it has one, is that same host (a page of another site posting cross-site is refused).
fn from_this_machine(headers: &axum::http::HeaderMap) -> Result<(), String> {
    const WHY: &str =
        "the API is open (no token is configured), so it answers only programs on this machine";
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    if !(name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()) {
        return Err(format!(
            "{WHY}, addressed by IP or localhost, not as '{name}'; configure a token (docs/security.md)"
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let same = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !same {
            return Err(format!(
                "{WHY}, not web pages of other sites (Origin '{origin}'); configure a token (docs/security.md)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        headers
    }

    #[test]
    fn the_open_api_answers_this_machine_not_other_sites_pages() {
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "10.0.0.5",
            "LOCALHOST",
        ] {
            assert!(super::from_this_machine(&headers(ok, None)).is_ok(), "{ok}");
        }
        let same = headers("127.0.0.1:8080", Some("http://127.0.0.1:8080"));
        assert!(super::from_this_machine(&same).is_ok());
        for (host, origin) in [
            ("rebind.evil.example:8080", None),
            ("127.0.0.1:8080", Some("https://evil.example")),
            ("127.0.0.1:8080", Some("null")),
            ("127.0.0.1:8080", Some("http://127.0.0.1:9999")),
            ("", None),
        ] {
            let refused = super::from_this_machine(&headers(host, origin));
            assert!(refused.is_err(), "{host} {origin:?}");
        }
    }
}
