//! `GET /dev/token?user=&name=&role=`: a token for any user, signed with
//! the secret a development gateway generated for itself. Routed only in
//! development mode with a generated secret (`--dev` and no
//! `EASEL_JWT_SECRET`), so no gateway with a real secret ever mints one:
//! the demo app gets its users' tokens here.

use crate::http::{ApiError, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::ErrorCode;
use shared::auth::{MintClaims, Role, mint_hs256};
use std::sync::Arc;

/// Lifetime of a development token.
const DEV_TOKEN_TTL_SECS: u64 = 86_400;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenQuery {
    user: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    role: Option<Role>,
}

/// `GET /dev/token`: `{"token": "..."}`.
pub(crate) async fn token(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> Result<Response, ApiError> {
    let Some(secret) = &state.settings.dev_secret else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "not a development gateway",
        ));
    };
    let valid = |s: &str, max: usize| {
        !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
    };
    if !valid(&q.user, 64) || !q.name.as_deref().is_none_or(|n| valid(n, 64)) {
        return Err(ApiError::new(
            ErrorCode::InvalidValue,
            "user and name: 1 to 64 characters, no control characters",
        ));
    }
    let mut claims = MintClaims::for_user(&q.user, DEV_TOKEN_TTL_SECS);
    claims.name = q.name;
    claims.role = q.role;
    let token = mint_hs256(secret, &claims)
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("signing failed: {e}")))?;
    Ok(Json(serde_json::json!({ "token": token })).into_response())
}
