//! The web UI that `narakim serve` serves at `/`: Studio → Settings →
//! Secrets, the Bot Dossier (Configurations, Deploy, Executions,
//! Triggers), Extensions and Audit.
//!
//! Server-rendered HTML ([`pages`], maud templates checked at compile
//! time) on the same state as the API, with htmx for the one partial
//! update (refreshing the executions list). The pages work without
//! JavaScript except for saving a secret value, which the browser seals
//! first ([`crate::service::seal`]; `assets/seal.js`).
//!
//! Policy lives in layers, not handlers:
//! - [`headers`]: a strict Content-Security-Policy (scripts and styles
//!   from this origin only, no inline script, no `eval`, no framing),
//!   `Cache-Control: no-store` on every page, `nosniff`, no referrer to
//!   other sites (same-origin, so a form post carries its `Origin`);
//! - [`csrf_guard`]: every POST carries the session's CSRF token (the
//!   sign-in form a cookie-bound one) and, when the browser sends one, an
//!   `Origin` of this server; otherwise 403 before any handler runs.
//!
//! Every handler then checks its caller exactly as the API route for the
//! same action does ([`crate::service::auth::Caller::require`]).

mod handlers;
pub mod pages;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::AppState;
use super::problem::Problem;

/// What the UI keeps: the key its sessions' forms are checked with.
#[derive(Debug)]
pub struct UiState {
    pub sessions: session::Sessions,
}

/// Largest form a page posts (a draft graph is the biggest).
const FORM_LIMIT: usize = 512 * 1024;

/// Why a page could not be shown.
#[derive(Debug)]
pub enum UiError {
    /// Not signed in (or the session's token no longer works).
    SignIn,
    /// The same problem the API would answer with, as a page.
    Problem(Problem),
}

impl From<Problem> for UiError {
    fn from(p: Problem) -> UiError {
        UiError::Problem(p)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            UiError::SignIn => Redirect::to("/ui/sign-in").into_response(),
            UiError::Problem(p) => {
                let reasons: Vec<String> = p
                    .extra
                    .get("reasons")
                    .and_then(|r| r.as_array())
                    .map(|r| {
                        r.iter()
                            .filter_map(|l| l.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
                (
                    status,
                    axum::response::Html(
                        pages::error(None, p.status, &p.detail, &reasons).into_string(),
                    ),
                )
                    .into_response()
            }
        }
    }
}

/// The UI's routes, with their policy layers.
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    use handlers as h;
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(h::home))
        .route("/ui/sign-in", get(h::sign_in_page).post(h::sign_in))
        .route("/ui/sign-out", post(h::sign_out))
        .route(
            "/ui/teams/{team}/secrets",
            get(h::team_secrets).post(h::save_team_secret),
        )
        .route(
            "/ui/teams/{team}/secrets/{name}/delete",
            get(h::confirm_team_delete).post(h::delete_team_secret),
        )
        .route("/ui/teams/{team}/bots/{bot}", get(h::dossier))
        .route(
            "/ui/teams/{team}/bots/{bot}/configurations",
            get(h::configurations),
        )
        .route(
            "/ui/teams/{team}/bots/{bot}/secrets",
            post(h::save_bot_secret),
        )
        .route(
            "/ui/teams/{team}/bots/{bot}/secrets/{name}/delete",
            get(h::confirm_bot_delete).post(h::delete_bot_secret),
        )
        .route(
            "/ui/teams/{team}/bots/{bot}/deploy",
            get(h::deploy_page).post(h::deploy),
        )
        .route("/ui/teams/{team}/bots/{bot}/draft", post(h::save_draft))
        .route("/ui/teams/{team}/bots/{bot}/pause", post(h::pause))
        .route("/ui/teams/{team}/bots/{bot}/resume", post(h::resume))
        .route("/ui/teams/{team}/bots/{bot}/run", post(h::run_now))
        .route("/ui/teams/{team}/bots/{bot}/executions", get(h::executions))
        .route(
            "/ui/teams/{team}/bots/{bot}/executions/{id}",
            get(h::execution),
        )
        .route("/ui/teams/{team}/bots/{bot}/triggers", get(h::triggers))
        .route("/ui/extensions", get(h::extensions))
        .route("/ui/audit", get(h::audit))
        .route("/ui/assets/{file}", get(asset))
        .layer(middleware::from_fn_with_state(state.clone(), csrf_guard))
        .layer(middleware::map_response(headers))
}

/// The security headers of every UI response, and every error as a page:
/// axum's own rejections (a form missing a field, a bad path segment)
/// come as plain text.
async fn headers(response: Response) -> Response {
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    let mut response = if response.status().as_u16() >= 400 && !is_html {
        let status = response.status();
        let text = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .unwrap_or_default();
        let detail = if text.is_empty() {
            status.to_string()
        } else {
            text
        };
        UiError::Problem(Problem::new(status, "bad-request", detail)).into_response()
    } else {
        response
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Refuses a POST without the right CSRF token, or from another origin.
async fn csrf_guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let refuse =
        |detail: &str| UiError::Problem(Problem::forbidden(detail.to_owned())).into_response();
    let (parts, body) = request.into_parts();
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let origin = origin.to_str().unwrap_or("");
        let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
        if origin_host != host {
            return refuse(
                "this form was posted from another site; open the page on this server and try again",
            );
        }
    }
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return UiError::Problem(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("the form is over {} KiB", FORM_LIMIT / 1024),
        ))
        .into_response();
    };
    let presented: Option<String> = form_urlencoded(&bytes, "csrf");
    let expected = if parts.uri.path() == "/ui/sign-in" {
        session::cookie(&parts.headers, session::SIGN_IN_COOKIE).map(str::to_owned)
    } else {
        match session::cookie(&parts.headers, session::COOKIE) {
            Some(id) => Some(state.ui.sessions.csrf_of(id)),
            None => return UiError::SignIn.into_response(),
        }
    };
    let ok = match (&presented, &expected) {
        (Some(p), Some(e)) => {
            use subtle::ConstantTimeEq;
            !e.is_empty() && bool::from(p.as_bytes().ct_eq(e.as_bytes()))
        }
        _ => false,
    };
    if !ok {
        if expected.is_none() && parts.uri.path() != "/ui/sign-in" {
            return UiError::SignIn.into_response();
        }
        return refuse(
            "the form's CSRF token is missing or stale; reload the page and submit it again",
        );
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// One field of an `application/x-www-form-urlencoded` body.
fn form_urlencoded(body: &[u8], field: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == field)
        .map(|(_, v)| v)
}

/// The embedded, pinned assets: nothing is fetched from another origin.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static [u8], &str) = match file.as_str() {
        pages::HTMX => (
            include_bytes!("assets/htmx-2.0.11.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "seal.js" => (
            include_bytes!("assets/seal.js"),
            "text/javascript; charset=utf-8",
        ),
        "app.css" => (include_bytes!("assets/app.css"), "text/css; charset=utf-8"),
        _ => {
            return UiError::Problem(Problem::not_found(format!("no asset {file}")))
                .into_response();
        }
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
