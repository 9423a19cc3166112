//! Web UI sessions: an API token pasted once, then a cookie.
//!
//! A session holds the token it was opened with and checks it again on
//! every request, exactly as a `Bearer` request would be checked: a
//! session can do what its token can, no more, and stops working when the
//! token expires or is revoked. The cookie is a random 256-bit id, sent
//! `HttpOnly; SameSite=Strict; Path=/` (and `Secure` when `serve` has
//! TLS), and the session expires after [`SESSION_TTL`] whatever happens.
//! Each session has its own CSRF token, which every form carries (checked
//! by [`super::csrf_guard`] before any handler runs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use zeroize::Zeroizing;

use super::UiError;
use crate::service::AppState;
use crate::service::auth::{Bearer, Caller};

/// The session cookie's name.
pub const COOKIE: &str = "nrk_session";
/// The sign-in form's own CSRF cookie (before there is a session).
pub const SIGN_IN_COOKIE: &str = "nrk_signin";
/// How long a session lives, at most (and never past its token's expiry).
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Most sessions held at once; past it the oldest are dropped.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    token: Zeroizing<String>,
    csrf: String,
    expires: Instant,
}

/// Every open session, in memory (a restart signs everyone out).
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions([REDACTED])")
    }
}

impl Sessions {
    /// Opens a session for `token` (already authenticated), returning the
    /// cookie's value.
    pub fn open(&self, token: Zeroizing<String>, token_expires_ms: Option<i64>) -> String {
        let id = random_id();
        let mut ttl = SESSION_TTL;
        if let Some(at) = token_expires_ms {
            let left = at.saturating_sub(crate::trigger::now_ms()).max(0) as u64;
            ttl = ttl.min(Duration::from_millis(left));
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                token,
                csrf: random_id(),
                expires: now + ttl,
            },
        );
        id
    }

    pub fn close(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// The session's token and CSRF token, if it is open and unexpired.
    fn find(&self, id: &str) -> Option<(Bearer, String)> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let session = map.get(id)?;
        if session.expires <= Instant::now() {
            map.remove(id);
            return None;
        }
        Some((Bearer::new(session.token.clone()), session.csrf.clone()))
    }

    /// The CSRF token of session `id`.
    pub fn csrf_of(&self, id: &str) -> Option<String> {
        self.find(id).map(|(_, csrf)| csrf)
    }
}

/// 32 random bytes, base64url.
pub fn random_id() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The value of cookie `name` in `headers`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value with the attributes every UI cookie has.
pub fn set_cookie(name: &str, value: &str, max_age: Option<Duration>, secure: bool) -> String {
    let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    match max_age {
        Some(age) => text.push_str(&format!("; Max-Age={}", age.as_secs())),
        None => text.push_str("; Max-Age=0"),
    }
    if secure {
        text.push_str("; Secure");
    }
    text
}

/// A signed-in request: the session's token, checked again now.
#[derive(Debug, Clone)]
pub struct Signed {
    pub caller: Caller,
    pub csrf: String,
    pub session: String,
}

impl FromRequestParts<Arc<AppState>> for Signed {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, UiError> {
        let session = cookie(&parts.headers, COOKIE)
            .map(str::to_owned)
            .ok_or(UiError::SignIn)?;
        let (bearer, csrf) = state.ui.sessions.find(&session).ok_or(UiError::SignIn)?;
        let caller = state
            .blocking(move |s| bearer.authenticate(s))
            .await
            .map_err(|p| {
                if p.status == 401 {
                    UiError::SignIn
                } else {
                    UiError::Problem(p)
                }
            })?;
        Ok(Signed {
            caller,
            csrf,
            session,
        })
    }
}
