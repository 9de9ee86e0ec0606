//! `/v1/tokens` (admin): list, create and revoke the tokens stored by the engine, and what
//! tokens did (`/v1/token-uses`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::auth::{CreateError, Role};
use crate::error::ApiError;

#[utoipa::path(
    get,
    path = "/tokens",
    operation_id = "tokens_list",
    tag = "tokens",
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["admin"]))
)]
pub(super) async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let stored = state.store.list_tokens().await?;
    Ok(Json(
        json!({ "config": state.tokens.config_names(), "stored": stored }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewToken {
    name: String,
    roles: Vec<Role>,
    #[serde(default)]
    sources: Option<Vec<String>>,
}

/// Answers the token's text, once: only its hash is kept.
#[utoipa::path(
    post,
    path = "/tokens",
    operation_id = "tokens_create",
    tag = "tokens",
    request_body(content = serde_json::Value, description = "see docs/api.md"),
    responses(
        (status = 201, description = "created (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["admin"]))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    body: Result<Json<NewToken>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(new) = body.map_err(|e| ApiError::BadRequest {
        code: "invalid_token_request",
        message: e.body_text(),
    })?;
    let text = crate::auth::create(
        &state.store,
        &new.name,
        new.roles.clone(),
        new.sources.clone(),
        &state.tokens.config_names(),
        state.clock.now(),
    )
    .await
    .map_err(|e| match e {
        CreateError::Invalid(message) => ApiError::BadRequest {
            code: "invalid_token_request",
            message,
        },
        CreateError::Store(e) => ApiError::from(e),
    })?;
    state.tokens.reload().await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "name": new.name, "roles": new.roles, "sources": new.sources, "token": text }),
        ),
    ))
}

#[utoipa::path(
    delete,
    path = "/tokens/{name}",
    operation_id = "tokens_revoke",
    tag = "tokens",
    params(("name" = String, Path, description = "the token's name")),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["admin"]))
)]
pub(super) async fn revoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !state.store.revoke_token(&name, state.clock.now()).await? {
        return Err(ApiError::NotFound {
            code: "token_not_found",
            message: format!(
                "no active stored token named '{name}' (tokens of the config are removed from the config)"
            ),
        });
    }
    state.tokens.reload().await?;
    Ok(Json(json!({ "revoked": name })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct UsesQuery {
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/token-uses",
    operation_id = "tokens_uses",
    tag = "tokens",
    params(UsesQuery),
    responses(
        (status = 200, description = "the answer (docs/api.md)", body = serde_json::Value),
        crate::error::Refusals,
    ),
    security(("token" = ["admin"]))
)]
pub(super) async fn uses(
    State(state): State<AppState>,
    query: Result<Query<UsesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(
        json!({ "uses": state.store.token_uses(limit).await? }),
    ))
}
