//! The join hook: for a canvas whose visibility is `hook`, the gateway asks
//! the app's backend whether a user may see it, and as what.
//!
//! `POST EASEL_JOIN_HOOK_URL` with `{"user", "name", "canvas", "claims"}`
//! (`Authorization: Bearer EASEL_JOIN_HOOK_SECRET` when set); the backend
//! answers 200 with `{"allow": true, "role": "player"}` or
//! `{"allow": false}`. Answers are cached per user and canvas for
//! `EASEL_JOIN_HOOK_CACHE_SECS`. Anything else (a timeout, a refused
//! connection, another status, a body that is not an answer) fails closed:
//! the caller is refused and the failure is counted; failures are not
//! cached.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::RwLock;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts};
use serde::{Deserialize, Serialize};
use shared::CanvasId;
use shared::auth::{Identity, Role};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Most answers kept in the cache; beyond it the cache starts afresh.
const CACHE_LIMIT: usize = 50_000;

/// Largest answer body read.
const MAX_ANSWER_BYTES: usize = 4096;

/// Where the hook is and how long to trust it.
#[derive(Debug, Clone)]
pub struct HookSettings {
    pub url: hyper::Uri,
    pub secret: Option<String>,
    pub timeout: Duration,
    pub cache_ttl: Duration,
}

impl HookSettings {
    /// Checks a hook URL: `http://host[:port]/path` (TLS is for a proxy or
    /// sidecar in front of the backend).
    pub fn parse_url(url: &str) -> Result<hyper::Uri, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(format!(
                "{url:?} must be an http:// URL with a host (put TLS in a sidecar or proxy)"
            ));
        }
        Ok(uri)
    }
}

/// Why the hook gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("the join hook did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the join hook could not be reached: {0}")]
    Unreachable(String),
    #[error("the join hook answered {0}")]
    Status(u16),
    #[error("the join hook's answer is not {{\"allow\": bool, \"role\"}}: {0}")]
    Answer(String),
}

impl HookError {
    fn outcome(&self) -> &'static str {
        match self {
            HookError::Timeout(_) => "timeout",
            HookError::Unreachable(_) => "unreachable",
            HookError::Status(_) | HookError::Answer(_) => "bad_answer",
        }
    }
}

#[derive(Serialize)]
struct Question<'a> {
    user: &'a str,
    name: Option<&'a str>,
    canvas: &'a CanvasId,
    claims: Claims<'a>,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    name: Option<&'a str>,
    role: Option<Role>,
    roles: &'a BTreeMap<String, Role>,
    admin: bool,
    exp: u64,
}

#[derive(Deserialize)]
struct Answer {
    allow: bool,
    role: Option<Role>,
}

/// See the module documentation.
pub struct JoinHook {
    settings: HookSettings,
    client: Client<HttpConnector, Full<Bytes>>,
    cache: RwLock<HashMap<(CanvasId, String), (Role, Instant)>>,
    /// Calls by outcome: allow, deny, timeout, unreachable, bad_answer.
    calls: IntCounterVec,
    seconds: Histogram,
}

impl JoinHook {
    /// A hook client with its metrics registered in `registry`.
    pub fn new(
        settings: HookSettings,
        registry: &prometheus::Registry,
    ) -> Result<Self, prometheus::Error> {
        let calls = IntCounterVec::new(
            Opts::new(
                "easel_gateway_join_hook_calls_total",
                "Join hook requests, by outcome (allow, deny, timeout, unreachable, bad_answer).",
            ),
            &["outcome"],
        )?;
        let seconds = Histogram::with_opts(
            HistogramOpts::new(
                "easel_gateway_join_hook_seconds",
                "Join hook round trips, answered or not.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(seconds.clone()))?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.timeout));
        connector.set_nodelay(true);
        Ok(JoinHook {
            client: Client::builder(TokioExecutor::new()).build(connector),
            settings,
            cache: RwLock::new(HashMap::new()),
            calls,
            seconds,
        })
    }

    /// The role the backend gives `identity` on `canvas` (`Role::None`:
    /// denied), from the cache when it is fresh enough.
    pub async fn role(&self, identity: &Identity, canvas: &CanvasId) -> Result<Role, HookError> {
        let key = (canvas.clone(), identity.user_id.clone());
        if let Some((role, at)) = self.cache.read().get(&key)
            && at.elapsed() < self.settings.cache_ttl
        {
            return Ok(*role);
        }
        let started = Instant::now();
        let asked = tokio::time::timeout(self.settings.timeout, self.ask(identity, canvas)).await;
        self.seconds.observe(started.elapsed().as_secs_f64());
        let answered = asked.unwrap_or(Err(HookError::Timeout(self.settings.timeout)));
        let role = match answered {
            Ok(role) => role,
            Err(err) => {
                self.calls.with_label_values(&[err.outcome()]).inc();
                tracing::warn!(%canvas, error = %err, "join hook failed; refusing");
                return Err(err);
            }
        };
        let outcome = if role == Role::None { "deny" } else { "allow" };
        self.calls.with_label_values(&[outcome]).inc();
        let mut cache = self.cache.write();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, (role, Instant::now()));
        Ok(role)
    }

    /// Forgets cached answers for `canvas` (of `user`, or of everyone).
    pub fn forget(&self, canvas: &CanvasId, user: Option<&str>) {
        self.cache
            .write()
            .retain(|(c, u), _| c != canvas || user.is_some_and(|user| user != u));
    }

    async fn ask(&self, identity: &Identity, canvas: &CanvasId) -> Result<Role, HookError> {
        let question = Question {
            user: &identity.user_id,
            name: identity.name.as_deref(),
            canvas,
            claims: Claims {
                sub: &identity.user_id,
                name: identity.name.as_deref(),
                role: identity.default_role,
                roles: &identity.canvas_roles,
                admin: identity.admin,
                exp: identity.expires_at,
            },
        };
        let body = serde_json::to_vec(&question).map_err(|e| HookError::Answer(e.to_string()))?;
        let mut request = hyper::Request::post(self.settings.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(secret) = &self.settings.secret {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {secret}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HookError::Unreachable(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| HookError::Unreachable(e.to_string()))?;
        if response.status() != hyper::StatusCode::OK {
            return Err(HookError::Status(response.status().as_u16()));
        }
        let limited = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES);
        let bytes = limited
            .collect()
            .await
            .map_err(|e| HookError::Answer(e.to_string()))?
            .to_bytes();
        let answer: Answer =
            serde_json::from_slice(&bytes).map_err(|e| HookError::Answer(e.to_string()))?;
        match (answer.allow, answer.role) {
            (false, _) => Ok(Role::None),
            (true, Some(Role::None)) | (true, None) => Err(HookError::Answer(
                "an allow needs a role: spectator, player or gm".into(),
            )),
            (true, Some(role)) => Ok(role),
        }
    }
}
