//! Errors as RFC 9457 problem details (`application/problem+json`).
//!
//! Every failure the API returns is a [`Problem`]: a status, a stable
//! `type` URI naming the kind of failure, a short `title` and a `detail`
//! that says what was wrong and how to fix it. Details come from our own
//! error types, never from a request body, so they hold no secret value;
//! the service's log scrubber sees them too. Internal failures answer 500
//! with a reference to the server log and nothing more.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::engine::executor::EngineError;
use crate::engine::registry::RegistryError;
use crate::engine::store::StoreError;
use crate::vault::VaultError;
use crate::vault::access::AuthError;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One RFC 9457 problem.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Extension members (for example `reasons` of a refused deploy).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// Seconds, sent as the `Retry-After` header too.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem of kind `slug` (the last segment of its `type` URI).
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("https://narakim.dev/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            extra: Map::new(),
            retry_after: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Problem {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Problem {
        self.retry_after = Some(seconds);
        self
    }

    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn invalid(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// A failure of ours: the detail goes to the log, the client gets a
    /// reference to it.
    pub fn internal(what: &str, error: &dyn std::fmt::Display) -> Problem {
        let reference = format!("{:016x}", rand_u64());
        tracing::error!(reference = %reference, "{what}: {error}");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!(
                "the server failed while {what}; the server log names the cause under reference {reference}"
            ),
        )
    }
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"narakim\""),
            );
        }
        response
    }
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Problem {
        match e {
            AuthError::Vault(e) => Problem::internal("checking the API token", &e),
            other => Problem::unauthorized(other.to_string()),
        }
    }
}

impl From<VaultError> for Problem {
    fn from(e: VaultError) -> Problem {
        use VaultError as V;
        match &e {
            V::Input(_) => Problem::invalid(e.to_string()),
            V::TeamNotFound(_)
            | V::BotNotFound(_)
            | V::SecretNotFound { .. }
            | V::TokenNotFound(_) => Problem::not_found(e.to_string()),
            V::BotNotInTeam { .. } => Problem::not_found(e.to_string()),
            V::TeamExists(_) | V::BotExists(_) | V::TeamHasBots { .. } => {
                Problem::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            V::VersionMismatch { current, .. } => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "version-mismatch",
                e.to_string(),
            )
            .with("current_version", current.map_or(Value::Null, Value::from)),
            V::PreconditionUnsupported(_) => Problem::bad_request(e.to_string()),
            V::TokenWithoutCapabilities | V::TokenExpiresInThePast => {
                Problem::invalid(e.to_string())
            }
            _ => Problem::internal("using the vault", &e),
        }
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        match &e {
            StoreError::ExecutionNotFound(_) => Problem::not_found(e.to_string()),
            StoreError::QueueFull { .. } => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "queue-full", e.to_string())
                    .retry_after(1)
            }
            StoreError::IdempotencyKeyReused { execution, .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                e.to_string(),
            )
            .with("execution_id", execution.as_str()),
            _ => Problem::internal("using the engine database", &e),
        }
    }
}

impl From<RegistryError> for Problem {
    fn from(e: RegistryError) -> Problem {
        use RegistryError as R;
        match e {
            R::Store(e) => e.into(),
            R::Load(_) | R::InvalidName { .. } | R::InvalidVersion { .. } => {
                Problem::invalid(e.to_string())
            }
            R::Conflict { .. } => Problem::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            R::NotInstalled { .. } | R::VersionNotInstalled { .. } => {
                Problem::not_found(e.to_string())
            }
            e => Problem::internal("using the extension registry", &e),
        }
    }
}

impl From<EngineError> for Problem {
    fn from(e: EngineError) -> Problem {
        match e {
            EngineError::Vault(e) => e.into(),
            EngineError::Store(e) => e.into(),
            EngineError::Paused(_) | EngineError::NotDeployed(_) => {
                Problem::new(StatusCode::CONFLICT, "bot-not-runnable", e.to_string())
            }
            EngineError::DeployRefused { reasons, .. } => {
                Problem::invalid("the deploy preflight refused the graph").with(
                    "reasons",
                    reasons.lines().map(Value::from).collect::<Vec<_>>(),
                )
            }
            EngineError::Registry(e) => e.into(),
            EngineError::Graph(_) | EngineError::BadTrigger(_) => Problem::invalid(e.to_string()),
            other => Problem::internal("running the engine", &other),
        }
    }
}
