//! `GET /v1/whoami` (any known token): the token's name and roles, and what they allow, so a
//! client (the console) can offer only what the caller may do. The routes still check.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use super::AppState;
use crate::auth::{Caller, Denied, Role};
use crate::error::ApiError;

#[utoipa::path(
    get,
    path = "/whoami",
    operation_id = "whoami_get",
    tag = "tokens",
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = []))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let caller = match state.tokens.identify(authorization).await {
        Ok(caller) => caller,
        Err(Denied::Unauthenticated(why)) => return Err(ApiError::Unauthenticated(why.into())),
        Err(Denied::Forbidden(why)) => return Err(ApiError::Forbidden(why)),
    };
    let may = |token: Option<&crate::auth::Token>| {
        Role::ALL
            .iter()
            .map(|r| (r.name().to_owned(), json!(token.is_none_or(|t| t.has(*r)))))
            .collect::<serde_json::Map<_, _>>()
    };
    Ok(Json(match caller {
        Caller::Open => json!({
            "name": null,
            "roles": [],
            "open": true,
            "may": may(None),
        }),
        Caller::Token(token) => json!({
            "name": token.name,
            "roles": token.roles,
            "open": false,
            "may": may(Some(&token)),
        }),
    }))
}
