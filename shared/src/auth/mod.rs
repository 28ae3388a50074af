//! JWT verification (and minting, for development tools and tests).
//!
//! The algorithm is pinned by configuration: a token whose header names any
//! other algorithm, or `none`, is rejected before its signature is looked at.
//! `exp` is required; `nbf` is checked when present; `iss` and `aud` are
//! checked when configured. All time checks allow a small, configured leeway.

pub use crate::role::Role;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest token accepted; longer input is rejected before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// Longest `sub` accepted.
pub const MAX_SUB_LEN: usize = 128;
/// Longest `name` accepted.
pub const MAX_NAME_LEN: usize = 64;

/// The signature algorithms Easel accepts, one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret.
    Hs256,
    /// RSA PKCS#1 v1.5 with SHA-256, verified with a PEM public key.
    Rs256,
    /// ECDSA P-256 with SHA-256, verified with a PEM public key.
    Es256,
}

impl JwtAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            JwtAlgorithm::Hs256 => Algorithm::HS256,
            JwtAlgorithm::Rs256 => Algorithm::RS256,
            JwtAlgorithm::Es256 => Algorithm::ES256,
        }
    }

    /// The name as it appears in a JWT header.
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::Hs256 => "HS256",
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Es256 => "ES256",
        }
    }
}

impl std::str::FromStr for JwtAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "HS256" => Ok(JwtAlgorithm::Hs256),
            "RS256" => Ok(JwtAlgorithm::Rs256),
            "ES256" => Ok(JwtAlgorithm::Es256),
            _ => Err(format!(
                "unsupported JWT algorithm {s:?}; use HS256, RS256 or ES256"
            )),
        }
    }
}

/// The key a token is verified with.
#[derive(Clone)]
pub enum VerifyKey {
    /// HS256 shared secret (at least 32 bytes).
    Secret(Vec<u8>),
    /// RS256/ES256 public key in PEM.
    PublicKeyPem(Vec<u8>),
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyKey::Secret(_) => f.write_str("Secret(<redacted>)"),
            VerifyKey::PublicKeyPem(_) => f.write_str("PublicKeyPem(..)"),
        }
    }
}

/// Everything token verification depends on.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub algorithm: JwtAlgorithm,
    pub key: VerifyKey,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud` (the token's `aud` must contain it), if set.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Longest lifetime a token may have (`exp` minus `iat`, or minus now
    /// without `iat`), in seconds; `None`: any.
    pub max_lifetime_secs: Option<u64>,
}

/// Auth settings that cannot work; the message names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("HS256 needs a shared secret, not a public key")]
    SecretRequired,
    #[error("HS256 secret is {0} bytes; at least {MIN_HS256_SECRET_BYTES} are required")]
    SecretTooShort(usize),
    #[error("{0} needs a PEM public key, not a shared secret")]
    PublicKeyRequired(&'static str),
    #[error("the {alg} public key is not a valid PEM key")]
    BadKey {
        alg: &'static str,
        #[source]
        source: jsonwebtoken::errors::Error,
    },
}

/// Why a token was rejected. All map to `E002` on the wire; the variant is
/// logged and counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("token algorithm is not the configured {expected}")]
    WrongAlgorithm { expected: &'static str },
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token audience is not accepted")]
    WrongAudience,
    #[error("token issuer is not accepted")]
    WrongIssuer,
    #[error("token lacks the required claim {0:?}")]
    MissingClaim(String),
    #[error("token claims are invalid: {0}")]
    InvalidClaims(String),
}

impl AuthError {
    /// Every [`AuthError::reason`], for metrics that start each label at zero.
    pub const REASONS: [&'static str; 10] = [
        "malformed",
        "too_long",
        "wrong_algorithm",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "wrong_audience",
        "wrong_issuer",
        "missing_claim",
        "invalid_claims",
    ];

    /// A bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Malformed => "malformed",
            AuthError::TooLong => "too_long",
            AuthError::WrongAlgorithm { .. } => "wrong_algorithm",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::InvalidClaims(_) => "invalid_claims",
        }
    }
}

/// The claims Easel reads; any others are ignored.
#[derive(Debug, Clone, Deserialize)]
struct Claims {
    sub: String,
    /// Required (checked by the validation); optional here so that a
    /// token without it is reported as missing the claim.
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    iat: Option<f64>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    roles: BTreeMap<String, Role>,
    #[serde(default)]
    admin: bool,
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`.
    pub user_id: String,
    /// The token's `name`.
    pub name: Option<String>,
    /// The token's `role`: the role on canvases not listed in `canvas_roles`.
    pub default_role: Option<Role>,
    /// The token's `roles`: canvas id to role.
    pub canvas_roles: BTreeMap<String, Role>,
    /// The token's `admin`: may create, change and delete canvases.
    pub admin: bool,
    /// The token's `exp`, in Unix seconds: a WebSocket connection closes
    /// with `4003` once it has passed (plus the allowed clock skew) unless a
    /// `refresh` brought a later one.
    pub expires_at: u64,
}

impl Identity {
    /// The user as stamped on the events it causes.
    pub fn author(&self) -> crate::protocol::Author {
        crate::protocol::Author {
            id: self.user_id.clone(),
            name: self.name.clone(),
        }
    }

    /// The role this identity holds on a canvas, if the token says.
    pub fn role_on(&self, canvas: &str) -> Option<Role> {
        self.canvas_roles.get(canvas).copied().or(self.default_role)
    }

    /// The role on a canvas, or `default` (the gateway's) if the token
    /// names none.
    pub fn role_or(&self, canvas: &str, default: Role) -> Role {
        self.role_on(canvas).unwrap_or(default)
    }
}

/// Verifies tokens against one pinned algorithm and key.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    algorithm: JwtAlgorithm,
    /// See [`AuthSettings::max_lifetime_secs`].
    max_lifetime_secs: Option<u64>,
    leeway_secs: u64,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Builds a verifier, checking that the key fits the algorithm.
    pub fn new(settings: &AuthSettings) -> Result<Self, AuthConfigError> {
        let alg = settings.algorithm;
        let key = match (alg, &settings.key) {
            (JwtAlgorithm::Hs256, VerifyKey::Secret(s)) => {
                if s.len() < MIN_HS256_SECRET_BYTES {
                    return Err(AuthConfigError::SecretTooShort(s.len()));
                }
                DecodingKey::from_secret(s)
            }
            (JwtAlgorithm::Hs256, VerifyKey::PublicKeyPem(_)) => {
                return Err(AuthConfigError::SecretRequired);
            }
            (JwtAlgorithm::Rs256, VerifyKey::PublicKeyPem(pem)) => {
                DecodingKey::from_rsa_pem(pem).map_err(|source| AuthConfigError::BadKey {
                    alg: alg.as_str(),
                    source,
                })?
            }
            (JwtAlgorithm::Es256, VerifyKey::PublicKeyPem(pem)) => DecodingKey::from_ec_pem(pem)
                .map_err(|source| AuthConfigError::BadKey {
                    alg: alg.as_str(),
                    source,
                })?,
            (_, VerifyKey::Secret(_)) => {
                return Err(AuthConfigError::PublicKeyRequired(alg.as_str()));
            }
        };
        let mut validation = Validation::new(alg.jwt());
        validation.leeway = settings.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // jsonwebtoken checks `aud`/`iss` only when the token has them, so a
        // configured audience or issuer must also be a required claim.
        let mut required = vec!["exp", "sub"];
        match &settings.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &settings.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(TokenVerifier {
            key,
            validation,
            algorithm: alg,
            max_lifetime_secs: settings.max_lifetime_secs,
            leeway_secs: settings.leeway_secs,
        })
    }

    /// The clock skew allowed on `exp` and `nbf`, in seconds.
    pub fn leeway_secs(&self) -> u64 {
        self.leeway_secs
    }

    /// Verifies a token and returns who it names.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLong);
        }
        // Check the pinned algorithm first, so a token for another algorithm
        // (or `none`, which jsonwebtoken cannot even parse) gets a precise error.
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::Json(_) | ErrorKind::InvalidAlgorithmName => AuthError::WrongAlgorithm {
                expected: self.algorithm.as_str(),
            },
            _ => AuthError::Malformed,
        })?;
        if header.alg != self.algorithm.jwt() {
            return Err(AuthError::WrongAlgorithm {
                expected: self.algorithm.as_str(),
            });
        }
        // RFC 7515 4.1.11: a critical extension the verifier does not
        // understand must make the token invalid; Easel understands none.
        if has_crit_header(token) {
            return Err(AuthError::InvalidClaims(
                "the crit header names extensions this server does not support".into(),
            ));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::InvalidAudience => AuthError::WrongAudience,
                ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
                ErrorKind::InvalidAlgorithm => AuthError::WrongAlgorithm {
                    expected: self.algorithm.as_str(),
                },
                ErrorKind::Json(err) => AuthError::InvalidClaims(err.to_string()),
                _ => AuthError::Malformed,
            },
        )?;
        let claims = data.claims;
        if claims.sub.is_empty() || claims.sub.len() > MAX_SUB_LEN {
            return Err(AuthError::InvalidClaims(format!(
                "sub must be 1..={MAX_SUB_LEN} bytes"
            )));
        }
        // Control characters (the presence entry separator among them)
        // would let one user pass for another in lists and logs.
        if claims.sub.chars().any(char::is_control) {
            return Err(AuthError::InvalidClaims(
                "sub must not contain control characters".into(),
            ));
        }
        if let Some(max) = self.max_lifetime_secs {
            let from = claims
                .iat
                .unwrap_or_else(|| (crate::now_ms() / 1000) as f64);
            if claims.exp.unwrap_or(f64::INFINITY) - from > (max + self.leeway_secs) as f64 {
                return Err(AuthError::InvalidClaims(format!(
                    "the token lives longer than the {max} s this server accepts"
                )));
            }
        }
        if let Some(name) = &claims.name
            && name.chars().count() > MAX_NAME_LEN
        {
            return Err(AuthError::InvalidClaims(format!(
                "name must be at most {MAX_NAME_LEN} characters"
            )));
        }
        Ok(Identity {
            user_id: claims.sub,
            name: claims.name,
            default_role: claims.role,
            canvas_roles: claims.roles,
            admin: claims.admin,
            expires_at: claims.exp.map_or(u64::MAX, |exp| exp.max(0.0) as u64),
        })
    }
}

/// Whether the token's protected header carries `crit`.
fn has_crit_header(token: &str) -> bool {
    use base64::Engine;
    let Some(header) = token.split('.').next() else {
        return false;
    };
    let Ok(json) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json)
        .is_ok_and(|h| h.contains_key("crit"))
}

/// The claims of a token to mint (development tools, the load tester, tests).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MintClaims {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, Role>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

impl MintClaims {
    /// Claims for `sub` that expire `ttl_secs` from now.
    pub fn for_user(sub: &str, ttl_secs: u64) -> Self {
        MintClaims {
            sub: sub.to_owned(),
            exp: crate::now_ms() / 1000 + ttl_secs,
            ..MintClaims::default()
        }
    }
}

/// Signs an HS256 token with a shared secret.
pub fn mint_hs256(
    secret: &[u8],
    claims: &MintClaims,
) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}

#[cfg(test)]
mod tests;
