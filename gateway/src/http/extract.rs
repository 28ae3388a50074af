//! Request extractors that answer with the API's own errors: the
//! authenticated caller ([`Authed`]), an admin ([`Admin`]), a server API
//! key ([`ServerKey`]), a valid canvas id in the path ([`CanvasPath`]), a
//! query string ([`ApiQuery`]); and the one token parser every transport
//! uses ([`token`]).

use super::ApiError;
use crate::state::AppState;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use shared::auth::Identity;
use shared::{CanvasId, ErrorCode};
use std::sync::Arc;

/// The token of a request: `Authorization: Bearer <token>`, else the
/// `token` query parameter. `Err` for an Authorization header of another
/// scheme (an API key is not a token).
pub(crate) fn token(headers: &HeaderMap, query: Option<&str>) -> Result<Option<String>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default();
        return match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                Ok(Some(token.trim().to_owned()))
            }
            _ => Err(ApiError::new(
                ErrorCode::AuthFailed,
                "Authorization header must be 'Bearer <token>'",
            )),
        };
    }
    Ok(query
        .into_iter()
        .flat_map(url_pairs)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v))
}

/// Splits a query string into decoded pairs.
pub(crate) fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The caller, authenticated by its token: 401 `E002` without a valid one.
pub(crate) struct Authed(pub Identity);

impl FromRequestParts<Arc<AppState>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        verify(state, &parts.headers, parts.uri.query()).map(Authed)
    }
}

fn verify(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Identity, ApiError> {
    let Some(token) = token(headers, query)? else {
        return Err(ApiError::new(ErrorCode::AuthFailed, "a token is required"));
    };
    state
        .verifier
        .verify(&token)
        .map_err(|e| ApiError::new(ErrorCode::AuthFailed, e.to_string()))
}

/// A request allowed to change the catalogue: a server API key, or a token
/// with the `admin` claim (401 `E002` without either, 403 `E008` for a
/// token without the claim).
pub(crate) struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        if given_key(&parts.headers).is_some() {
            return check_key(state, &parts.headers).map(|()| Admin);
        }
        let identity = verify(state, &parts.headers, parts.uri.query())?;
        if identity.admin {
            Ok(Admin)
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                "changing canvases needs a token with the admin claim, or a server API key",
            ))
        }
    }
}

/// A request carrying one of `EASEL_API_KEYS` (`Authorization: ApiKey
/// <key>` or `X-Api-Key`); 401 `E002` otherwise.
pub(crate) struct ServerKey;

impl FromRequestParts<Arc<AppState>> for ServerKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        check_key(state, &parts.headers).map(|()| ServerKey)
    }
}

fn given_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("apikey"))
        .map(|(_, k)| k.trim())
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_key(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.settings.api_keys.is_empty() {
        return Err(ApiError::new(
            ErrorCode::AuthFailed,
            "the server API is disabled: no EASEL_API_KEYS configured",
        ));
    }
    let Some(given) = given_key(headers) else {
        return Err(ApiError::new(
            ErrorCode::AuthFailed,
            "an API key is required (Authorization: ApiKey <key>, or X-Api-Key)",
        ));
    };
    // Every key is compared, so timing does not tell which matched.
    let matched = state
        .settings
        .api_keys
        .iter()
        .fold(false, |m, k| same(k.as_bytes(), given.as_bytes()) | m);
    if matched {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::AuthFailed, "API key not accepted"))
    }
}

/// A valid canvas id from the path: 400 `E006` otherwise.
pub(crate) struct CanvasPath(pub CanvasId);

impl<S: Send + Sync> FromRequestParts<S> for CanvasPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::new(ErrorCode::InvalidMessage, r.body_text()))?;
        CanvasId::new(&id)
            .map(CanvasPath)
            .map_err(|e| ApiError::new(ErrorCode::InvalidMessage, e.to_string()))
    }
}

/// `Query`, with a malformed query string (a number that is not one, say)
/// refused as 400 `E006` in the API's JSON error form rather than axum's
/// plain text.
pub(crate) struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|r| ApiError::new(ErrorCode::InvalidMessage, r.body_text()))
    }
}

/// A JSON request body, or 400 `E006` saying what is wrong with it.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(ErrorCode::InvalidMessage, format!("body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tokens_are_percent_decoded() {
        let pairs: Vec<_> = url_pairs("a=1&token=ab%2Bc%3D&x").collect();
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("token".into(), "ab+c=".into()),
                ("x".into(), "".into())
            ]
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%aé"), "%aé");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }
}
