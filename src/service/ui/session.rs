//! Web UI sessions: an API token pasted once, then a cookie.
//!
//! A session stands for the token it was opened with, and checks that
//! token again on every request, exactly as a `Bearer` request would be
//! checked: a session can do what its token can, no more, and stops
//! working when the token expires or is revoked. Sessions are kept in the
//! vault ([`crate::vault::session`], which stores only a digest of each
//! id), so every node behind a load balancer knows every session, and a
//! restart signs nobody out. The cookie is a random 256-bit id, sent
//! `HttpOnly; SameSite=Strict; Path=/` (and `Secure` when `serve` has
//! TLS), and the session expires after [`SESSION_TTL`] whatever happens.
//! Each session's CSRF token, which every form carries (checked by
//! [`super::csrf_guard`] before any handler runs), is a MAC of its id
//! under a key derived from the vault, so any node can check it without a
//! lookup.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::UiError;
use crate::service::AppState;
use crate::service::auth::Caller;

/// The session cookie's name.
pub const COOKIE: &str = "nrk_session";
/// The sign-in form's own CSRF cookie (before there is a session).
pub const SIGN_IN_COOKIE: &str = "nrk_signin";
/// How long a session lives, at most (and never past its token's expiry).
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// What the UI needs to check a session's forms: the CSRF key, derived
/// from the vault ([`crate::vault::ServiceKey::UiCsrf`]), so every node
/// holds the same one.
pub struct Sessions {
    csrf_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions([REDACTED])")
    }
}

impl Sessions {
    pub fn new(csrf_key: Zeroizing<[u8; 32]>) -> Sessions {
        Sessions { csrf_key }
    }

    /// The CSRF token of session `id`: `HMAC-SHA256(csrf key, id)`,
    /// base64url. Only someone who holds the cookie can compute it here,
    /// and a page from another site can read neither.
    pub fn csrf_of(&self, id: &str) -> String {
        use base64::Engine;
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.csrf_key.as_ref())
            .expect("HMAC takes keys of any length");
        mac.update(b"nrk-csrf\0");
        mac.update(id.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
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

/// A signed-in request: the session's token, checked again now. (The
/// session's id, a credential, is not kept here.)
#[derive(Debug, Clone)]
pub struct Signed {
    pub caller: Caller,
    pub csrf: String,
}

impl FromRequestParts<Arc<AppState>> for Signed {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, UiError> {
        let session = cookie(&parts.headers, COOKIE)
            .map(str::to_owned)
            .ok_or(UiError::SignIn)?;
        let csrf = state.ui.sessions.csrf_of(&session);
        let caller = state
            .blocking(move |s| Caller::of_session(s, &session))
            .await
            .map_err(|p| {
                if p.status == 401 {
                    UiError::SignIn
                } else {
                    UiError::Problem(p)
                }
            })?;
        Ok(Signed { caller, csrf })
    }
}
