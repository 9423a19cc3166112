//! The `/api/v1` routes, plus `/healthz`, `/readyz` and `/metrics`.
//!
//! Every route below `/api/v1` authenticates its [`Caller`] and states the
//! capability and scope it needs before it looks anything up. Teams and
//! bots appear in the path (`/teams/{team}/bots/{bot}/…`), and a bot must
//! belong to the team its path names (404 otherwise).
//!
//! Secrets are write-only: `PUT …/secrets/{name}` creates or overwrites
//! (with `If-Match: "VERSION"` it overwrites only that version, 412
//! otherwise; with `If-None-Match: *` it only creates), and no route
//! returns a value. The request body that carries a value is wiped once
//! the value is sealed.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroize;

use super::AppState;
use super::auth::{Bearer, Caller, Target};
use super::problem::{PROBLEM_JSON, Problem};
use crate::engine::graph::{Format, Graph};
use crate::engine::queue::RunQueue;
use crate::engine::store::{ExecutionId, ExecutionStatus};
use crate::vault::access::Capability;
use crate::vault::{
    InputError, Precondition, Scope, SecretInfo, SecretName, SecretValue, Vault, format_time,
};

type Shared = State<Arc<AppState>>;
type ApiResult = Result<Response, Problem>;

/// One route of the API: the one table both the router and the OpenAPI
/// document ([`super::openapi`]) are built from, so neither can describe a
/// route the other lacks.
#[derive(Debug)]
pub struct Route {
    pub method: Method,
    /// In axum's syntax (`/api/v1/teams/{team}`), which is also OpenAPI's.
    pub path: &'static str,
    pub operation_id: &'static str,
    pub summary: &'static str,
    /// `None` for the unauthenticated health and metrics routes.
    pub access: Option<Access>,
    /// The component schema of the JSON request body, if it takes one.
    pub request: Option<&'static str>,
    /// Each success status and the component schema of its JSON body.
    pub success: &'static [(u16, Option<&'static str>)],
    /// Failure statuses beyond those every authenticated route has.
    pub failures: &'static [u16],
    /// Headers the route reads.
    pub headers: &'static [&'static str],
    handler: fn() -> MethodRouter<Arc<AppState>>,
}

/// What a route needs of its caller's token.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    pub capability: Option<Capability>,
    /// In words, for the document: "admin", "team", "bot".
    pub scope: &'static str,
}

const fn token(capability: Option<Capability>, scope: &'static str) -> Option<Access> {
    Some(Access { capability, scope })
}

use Capability as C;

/// Every route, in the order the document lists them.
pub static ROUTES: &[Route] = &[
    Route {
        method: Method::GET,
        path: "/healthz",
        operation_id: "healthz",
        summary: "Liveness: the process answers",
        access: None,
        request: None,
        success: &[(200, Some("Status"))],
        failures: &[],
        headers: &[],
        handler: || get(healthz),
    },
    Route {
        method: Method::GET,
        path: "/readyz",
        operation_id: "readyz",
        summary: "Readiness: the stores answer and the server is not shutting down",
        access: None,
        request: None,
        success: &[(200, Some("Status"))],
        failures: &[503],
        headers: &[],
        handler: || get(readyz),
    },
    Route {
        method: Method::GET,
        path: "/metrics",
        operation_id: "metrics",
        summary: "Prometheus metrics (text exposition format)",
        access: None,
        request: None,
        success: &[(200, None)],
        failures: &[],
        headers: &[],
        handler: || get(metrics),
    },
    Route {
        method: Method::GET,
        path: "/api/v1/openapi.json",
        operation_id: "openapi",
        summary: "This document",
        access: None,
        request: None,
        success: &[(200, None)],
        failures: &[],
        headers: &[],
        handler: || get(openapi),
    },
    Route {
        method: Method::GET,
        path: "/api/v1/teams",
        operation_id: "listTeams",
        summary: "The teams the token can see",
        access: token(None, "any"),
        request: None,
        success: &[(200, Some("TeamList"))],
        failures: &[],
        headers: &[],
        handler: || get(list_teams),
    },
    Route {
        method: Method::POST,
        path: "/api/v1/teams",
        operation_id: "createTeam",
        summary: "Create a team",
        access: token(None, "admin"),
        request: Some("NameRequest"),
        success: &[(201, Some("Named"))],
        failures: &[400, 409, 413, 415, 422],
        headers: &[],
        handler: || post(create_team),
    },
    Route {
        method: Method::GET,
        path: "/api/v1/teams/{team}",
        operation_id: "showTeam",
        summary: "One team",
        access: token(None, "team"),
        request: None,
        success: &[(200, Some("Team"))],
        failures: &[404],
        headers: &[],
        handler: || get(show_team),
    },
    Route {
        method: Method::DELETE,
        path: "/api/v1/teams/{team}",
        operation_id: "deleteTeam",
        summary: "Delete a team that has no bots, with its secrets",
        access: token(None, "admin"),
        request: None,
        success: &[(204, None)],
        failures: &[404, 409, 422],
        headers: &[],
        handler: || delete(delete_team),
    },
    Route {
        method: Method::GET,
        path: "/api/v1/teams/{team}/bots",
        operation_id: "listBots",
        summary: "The team's bots",
        access: token(None, "team"),
        request: None,
        success: &[(200, Some("BotList"))],
        failures: &[404, 422],
        headers: &[],
        handler: || get(list_bots),
    },
    Route {
        method: Method::POST,
        path: "/api/v1/teams/{team}/bots",
        operation_id: "createBot",
        summary: "Create a bot in the team",
        access: token(Some(C::BotsDeploy), "team"),
        request: Some("NameRequest"),
        success: &[(201, Some("Named"))],
        failures: &[400, 404, 409, 413, 415, 422],
        headers: &[],
        handler: || post(create_bot),
    },
    Route {
        method: Method::GET,
        path: "/api/v1/teams/{team}/bots/{bot}",
        operation_id: "showBot",
        summary: "One bot: paused or not, and its deployed graph",
        access: token(None, "bot"),
        request: None,
        success: &[(200, Some("BotState"))],
        failures: &[404, 422],
        headers: &[],
        handler: || get(show_bot),
    },
    Route {
        method: Method::DELETE,
        path: "/api/v1/teams/{team}/bots/{bot}",
        operation_id: "deleteBot",
        summary: "Delete a bot with its secrets, deployments and executions",
        access: token(Some(C::BotsDeploy), "team"),
        request: None,
        success: &[(204, None)],
        failures: &[404, 422],
        headers: &[],
        handler: || delete(delete_bot),
    },
    Route {
        method: Method::GET,
        path: "/api/v1/teams/{team}/secrets",
        operation_id: "listTeamSecrets",
        summary: "The team's secrets (never their values) and the nodes that use each",
        access: token(Some(C::SecretsList), "team"),
        request: None,
        success: &[(200, Some("SecretList"))],
        failures: &[404, 422],
        headers: &[],
        handler: || get(list_team_secrets),
    },
    Route {
        method: Method::PUT,
        path: "/api/v1/teams/{team}/secrets/{name}",
        operation_id: "putTeamSecret",
        summary: "Create or overwrite a team secret (If-Match: only that version; If-None-Match: * only create)",
        access: token(Some(C::SecretsWrite), "team"),
        request: Some("SecretWrite"),
        success: &[(200, Some("SecretWritten")), (201, Some("SecretWritten"))],
        failures: &[400, 404, 412, 413, 415, 422],
        headers: &["If-Match", "If-None-Match"],
        handler: || put(put_team_secret),
    },
    Route {
        method: Method::DELETE,
        path: "/api/v1/teams/{team}/secrets/{name}",
        operation_id: "deleteTeamSecret",
        summary: "Delete a team secret (If-Match: only that version)",
        access: token(Some(C::SecretsWrite), "team"),
        request: None,
        success: &[(204, None)],
        failures: &[400, 404, 412, 422],
        headers: &["If-Match"],
        handler: || delete(delete_team_secret),
    },
    Route {
        method: Method::GET,
        path: "/api/v1/teams/{team}/bots/{bot}/secrets",
        operation_id: "listBotSecrets",
        summary: "The secrets the bot resolves, its own and its team's (never their values)",
        access: token(Some(C::SecretsList), "bot"),
        request: None,
        success: &[(200, Some("SecretList"))],
        failures: &[404, 422],
        headers: &[],
        handler: || get(list_bot_secrets),
    },
    Route {
        method: Method::PUT,
        path: "/api/v1/teams/{team}/bots/{bot}/secrets/{name}",
        operation_id: "putBotSecret",
        summary: "Create or overwrite a bot secret (If-Match: only that version; If-None-Match: * only create)",
        access: token(Some(C::SecretsWrite), "bot"),
        request: Some("SecretWrite"),
        success: &[(200, Some("SecretWritten")), (201, Some("SecretWritten"))],
        failures: &[400, 404, 412, 413, 415, 422],
        headers: &["If-Match", "If-None-Match"],
        handler: || put(put_bot_secret),
    },
    Route {
        method: Method::DELETE,
        path: "/api/v1/teams/{team}/bots/{bot}/secrets/{name}",
        operation_id: "deleteBotSecret",
        summary: "Delete a bot secret (If-Match: only that version)",
        access: token(Some(C::SecretsWrite), "bot"),
        request: None,
        success: &[(204, None)],
        failures: &[400, 404, 412, 422],
        headers: &["If-Match"],
        handler: || delete(delete_bot_secret),
    },
    Route {
        method: Method::GET,
        path: "/api/v1/teams/{team}/bots/{bot}/secret-requirements",
        operation_id: "secretRequirements",
        summary: "The configurations view: each node's required secrets and where each resolves (bot, team or missing)",
        access: token(Some(C::SecretsList), "bot"),
        request: None,
        success: &[(200, Some("Requirements"))],
        failures: &[404, 422],
        headers: &[],
        handler: || get(secret_requirements),
    },
    Route {
        method: Method::GET,
        path: "/api/v1/teams/{team}/bots/{bot}/deployment",
        operation_id: "showDeployment",
        summary: "The deployed graph, with each node's pinned extension",
        access: token(Some(C::BotsDeploy), "bot"),
        request: None,
        success: &[(200, Some("Deployment"))],
        failures: &[404, 422],
        headers: &[],
        handler: || get(show_deployment),
    },
    Route {
        method: Method::PUT,
        path: "/api/v1/teams/{team}/bots/{bot}/deployment",
        operation_id: "deploy",
        summary: "Deploy a graph; a refused preflight answers 422 with its reasons",
        access: token(Some(C::BotsDeploy), "bot"),
        request: Some("Graph"),
        success: &[(200, Some("Deployed"))],
        failures: &[400, 404, 413, 415, 422],
        headers: &[],
        handler: || put(deploy),
    },
    Route {
        method: Method::POST,
        path: "/api/v1/teams/{team}/bots/{bot}/pause",
        operation_id: "pauseBot",
        summary: "Pause the bot: no run starts until it is resumed",
        access: token(Some(C::BotsPause), "bot"),
        request: None,
        success: &[(200, Some("PauseState"))],
        failures: &[404, 422],
        headers: &[],
        handler: || post(pause),
    },
    Route {
        method: Method::POST,
        path: "/api/v1/teams/{team}/bots/{bot}/resume",
        operation_id: "resumeBot",
        summary: "Resume a paused bot",
        access: token(Some(C::BotsPause), "bot"),
        request: None,
        success: &[(200, Some("PauseState"))],
        failures: &[404, 422],
        headers: &[],
        handler: || post(resume),
    },
    Route {
        method: Method::POST,
        path: "/api/v1/teams/{team}/bots/{bot}/runs",
        operation_id: "startRun",
        summary: "Queue a run with the body as its trigger; 202 once it is durably queued",
        access: token(Some(C::RunsStart), "bot"),
        request: Some("Trigger"),
        success: &[(202, Some("Enqueued"))],
        failures: &[400, 404, 409, 413, 415, 422, 503],
        headers: &["Idempotency-Key"],
        handler: || post(start_run),
    },
    Route {
        method: Method::GET,
        path: "/api/v1/teams/{team}/bots/{bot}/executions",
        operation_id: "listExecutions",
        summary: "The bot's newest executions (at most 100)",
        access: token(Some(C::ExecutionsRead), "bot"),
        request: None,
        success: &[(200, Some("ExecutionList"))],
        failures: &[404, 422],
        headers: &[],
        handler: || get(list_executions),
    },
    Route {
        method: Method::GET,
        path: "/api/v1/teams/{team}/bots/{bot}/executions/{id}",
        operation_id: "showExecution",
        summary: "One execution, queued, running or finished, with every node (scrubbed)",
        access: token(Some(C::ExecutionsRead), "bot"),
        request: None,
        success: &[(200, Some("Execution"))],
        failures: &[404, 422],
        headers: &[],
        handler: || get(show_execution),
    },
    Route {
        method: Method::GET,
        path: "/api/v1/extensions",
        operation_id: "listExtensions",
        summary: "Installed extensions, every version, with what each needs and reaches",
        access: token(None, "team"),
        request: None,
        success: &[(200, Some("ExtensionList"))],
        failures: &[],
        headers: &[],
        handler: || get(list_extensions),
    },
    Route {
        method: Method::POST,
        path: "/api/v1/extensions",
        operation_id: "installExtension",
        summary: "Upload and install a component (body: the .wasm bytes, application/wasm); 201 when installed, 200 when those bytes were installed already",
        access: token(Some(C::ExtensionsInstall), "team"),
        request: Some("Component"),
        success: &[(201, Some("Installed")), (200, Some("Installed"))],
        failures: &[409, 413, 415, 422],
        headers: &[],
        handler: || post(install_extension).layer(DefaultBodyLimit::max(MAX_COMPONENT)),
    },
    Route {
        method: Method::GET,
        path: "/api/v1/extensions/{extension}",
        operation_id: "showExtension",
        summary: "One installed extension (newest version, or ?version=V), with its installed versions",
        access: token(None, "team"),
        request: None,
        success: &[(200, Some("Extension"))],
        failures: &[404],
        headers: &[],
        handler: || get(show_extension),
    },
    Route {
        method: Method::POST,
        path: "/hooks/{trigger_id}",
        operation_id: "deliverWebhook",
        summary: "A signed webhook delivery for a deployed trigger: verified over the raw body, deduplicated, queued (202); no token, no query string",
        access: None,
        request: None,
        success: &[(202, Some("Delivered"))],
        failures: &[400, 401, 404, 409, 413, 503],
        headers: &[],
        handler: || post(super::hooks::webhook),
    },
    Route {
        method: Method::POST,
        path: "/interactions/{trigger_id}",
        operation_id: "deliverDiscordInteraction",
        summary: "Discord's interactions endpoint for a deployed trigger: Ed25519-verified (401 otherwise), PING answered with PONG, commands queued and answered with a deferred response (type 5)",
        access: None,
        request: None,
        success: &[(200, Some("InteractionResponse"))],
        failures: &[400, 401, 404, 409, 413, 503],
        headers: &[],
        handler: || post(super::hooks::interaction),
    },
    Route {
        method: Method::GET,
        path: "/api/v1/seal-key",
        operation_id: "sealKey",
        summary: "The server's HPKE public key, for sealing a secret value in the client (RFC 9180; the web UI does this)",
        access: None,
        request: None,
        success: &[(200, Some("SealKey"))],
        failures: &[],
        headers: &[],
        handler: || get(seal_key),
    },
    Route {
        method: Method::GET,
        path: "/api/v1/audit",
        operation_id: "audit",
        summary: "The newest 1,000 audit entries",
        access: token(Some(C::AuditRead), "admin"),
        request: None,
        success: &[(200, Some("AuditList"))],
        failures: &[],
        headers: &[],
        handler: || get(audit),
    },
];

/// The whole HTTP surface: the API, and the web UI ([`super::ui`]) with
/// its own layers.
pub fn router(state: Arc<AppState>) -> Router {
    let mut api = Router::new();
    for route in ROUTES {
        // Routes of one path merge their methods.
        api = api.route(route.path, (route.handler)());
    }
    let api = api
        .fallback(no_route)
        .layer(middleware::map_response(as_problem));
    api.merge(super::ui::router(state.clone()))
        .layer(middleware::from_fn_with_state(state.clone(), request_log))
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .with_state(state)
}

// ----- policy layers -----

/// One log line and one metric per request: method, route template,
/// status and time. Never the body, a header value, a cookie or the query.
async fn request_log(State(state): Shared, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    state.metrics.request(&route, &method, status);
    tracing::info!(
        method = %method,
        route = %route,
        status,
        ms = %format_args!("{:.2}", started.elapsed().as_secs_f64() * 1000.0),
        "request"
    );
    response
}

/// Turns every error response that is not already a problem (axum's own
/// rejections: a bad path segment, a body over the limit, a wrong method)
/// into one, so a client always gets `application/problem+json`.
async fn as_problem(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if status.as_u16() < 400 || is_problem {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let (slug, detail) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            format!(
                "this route does not take that method{}",
                allow
                    .as_ref()
                    .and_then(|a| a.to_str().ok())
                    .map(|a| format!("; it takes {a}"))
                    .unwrap_or_default()
            ),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "too-large",
            "the request body is over the server's limit (--body-limit)".to_owned(),
        ),
        _ => (
            "bad-request",
            if text.is_empty() {
                status.to_string()
            } else {
                text
            },
        ),
    };
    let mut response = Problem::new(status, slug, detail).into_response();
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}

async fn no_route() -> Problem {
    Problem::not_found("no such route; the API lives under /api/v1 (see docs/openapi.json)")
}

// ----- health -----

async fn healthz() -> Response {
    json_ok(json!({"status": "ok"}))
}

async fn readyz(State(state): Shared) -> Response {
    if !state.is_ready() {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "the server is shutting down",
        )
        .into_response();
    }
    let probe = state.blocking(|s| Ok(s.engine.store().depth()?)).await;
    match probe {
        Ok(_) => json_ok(json!({"status": "ready"})),
        Err(p) => p.into_response(),
    }
}

async fn openapi() -> Response {
    json_ok(super::openapi::document())
}

async fn metrics(State(state): Shared) -> ApiResult {
    let depth = state.blocking(|s| Ok(s.engine.store().depth()?)).await?;
    let mut response = state.metrics.render(depth).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

// ----- teams and bots -----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameBody {
    name: String,
}

async fn list_teams(State(state): Shared, caller: Caller) -> ApiResult {
    let teams = state.blocking(|s| Ok(s.vault().list_teams()?)).await?;
    let visible: Vec<Value> = teams
        .into_iter()
        .filter(|t| caller.require(None, Target::Team(&t.name)).is_ok())
        .map(|t| {
            json!({"name": t.name, "bots": t.bots, "secrets": t.secrets, "created_at": format_time(t.created_at_ms)})
        })
        .collect();
    Ok(json_ok(json!({ "teams": visible })))
}

async fn create_team(
    State(state): Shared,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require(None, Target::Teams)?;
    let NameBody { name } = json_body(&headers, &body)?;
    let actor = caller.id().to_owned();
    let team = name.clone();
    state
        .blocking(move |s| Ok(s.vault().acting_as(&actor).create_team(&team)?))
        .await?;
    Ok(created(
        &format!("/api/v1/teams/{name}"),
        json!({"name": name}),
    ))
}

async fn show_team(State(state): Shared, caller: Caller, Path(team): Path<String>) -> ApiResult {
    caller.require(None, Target::Team(&team))?;
    let name = team.clone();
    let info = state
        .blocking(move |s| {
            s.engine
                .vault()
                .list_teams()?
                .into_iter()
                .find(|t| t.name == name)
                .ok_or_else(|| crate::vault::VaultError::TeamNotFound(name).into())
        })
        .await?;
    Ok(json_ok(json!({
        "name": info.name, "bots": info.bots, "secrets": info.secrets,
        "created_at": format_time(info.created_at_ms)
    })))
}

async fn delete_team(State(state): Shared, caller: Caller, Path(team): Path<String>) -> ApiResult {
    caller.require(None, Target::Teams)?;
    let actor = caller.id().to_owned();
    state
        .blocking(move |s| {
            let mut vault = s.vault();
            vault.acting_as(&actor).delete_team(&team)?;
            rebuild_log_scrubber(s, &mut vault);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_bots(State(state): Shared, caller: Caller, Path(team): Path<String>) -> ApiResult {
    caller.require(None, Target::Team(&team))?;
    let bots = state
        .blocking(move |s| {
            let mut vault = s.vault();
            // 404 for a team that does not exist, rather than an empty list.
            vault.snapshot(&Scope::Team(team.clone()))?;
            Ok(vault
                .list_bots()?
                .into_iter()
                .filter(|b| b.team == team)
                .collect::<Vec<_>>())
        })
        .await?;
    let bots: Vec<Value> = bots
        .into_iter()
        .map(|b| json!({"name": b.name, "team": b.team, "secrets": b.secrets, "created_at": format_time(b.created_at_ms)}))
        .collect();
    Ok(json_ok(json!({ "bots": bots })))
}

async fn create_bot(
    State(state): Shared,
    caller: Caller,
    Path(team): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require(Some(Capability::BotsDeploy), Target::Team(&team))?;
    let NameBody { name } = json_body(&headers, &body)?;
    let actor = caller.id().to_owned();
    let (bot, in_team) = (name.clone(), team.clone());
    state
        .blocking(move |s| {
            Ok(s.engine
                .vault()
                .acting_as(&actor)
                .create_bot(&bot, &in_team)?)
        })
        .await?;
    Ok(created(
        &format!("/api/v1/teams/{team}/bots/{name}"),
        json!({"name": name, "team": team}),
    ))
}

async fn show_bot(
    State(state): Shared,
    caller: Caller,
    Path((team, bot)): Path<(String, String)>,
) -> ApiResult {
    caller.require(
        None,
        Target::Bot {
            team: &team,
            bot: &bot,
        },
    )?;
    let status = state
        .blocking(move |s| {
            bot_in_team(&s.vault(), &team, &bot)?;
            Ok(s.engine.status(&bot, None)?)
        })
        .await?;
    Ok(json_ok(json!({
        "name": status.bot,
        "paused": status.paused,
        "graph_version": status.graph_version,
        "triggers": status.triggers,
    })))
}

async fn delete_bot(
    State(state): Shared,
    caller: Caller,
    Path((team, bot)): Path<(String, String)>,
) -> ApiResult {
    caller.require(Some(Capability::BotsDeploy), Target::Team(&team))?;
    let actor = caller.id().to_owned();
    state
        .blocking(move |s| {
            let shared = {
                let vault = s.vault();
                bot_in_team(&vault, &team, &bot)?;
                matches!(vault.config().database, crate::vault::Database::Postgres(_))
            };
            if !shared {
                // Two SQLite files: the engine's rows first, so a failure
                // between the two leaves an undeployed bot that a second
                // delete removes, never records of a bot that is gone.
                s.engine.store().delete_bot_data(&bot)?;
            }
            let mut vault = s.vault();
            vault
                .acting_as(&actor)
                .delete_bot_with(&bot, |tx| match shared {
                    true => crate::engine::store::delete_bot_rows(tx, &bot),
                    false => Ok(()),
                })?;
            rebuild_log_scrubber(s, &mut vault);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ----- secrets -----

/// A secret write: the value in the clear (over TLS, from a client the
/// caller runs), or sealed to the server's key ([`super::seal`], what the
/// web UI sends). Exactly one of the two.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    value: Option<String>,
    sealed: Option<super::seal::Envelope>,
}

async fn list_team_secrets(
    State(state): Shared,
    caller: Caller,
    Path(team): Path<String>,
) -> ApiResult {
    caller.require(Some(Capability::SecretsList), Target::Team(&team))?;
    let listed = state
        .blocking(move |s| {
            Ok(team_secrets_in_use(s, &team)?
                .into_iter()
                .map(|(info, users)| secret_json(&info, users.into_iter()))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(json_ok(json!({ "secrets": listed })))
}

/// A team's secrets, each with the `bot/node`s of the team's deployed
/// bots that resolve it to the team (not overridden by a bot secret).
pub(super) fn team_secrets_in_use(
    s: &AppState,
    team: &str,
) -> Result<Vec<(SecretInfo, Vec<String>)>, Problem> {
    let vault = s.vault();
    let secrets = vault.list_secrets(&Scope::Team(team.to_owned()))?;
    let bots: Vec<String> = vault
        .list_bots()?
        .into_iter()
        .filter(|b| b.team == team)
        .map(|b| b.name)
        .collect();
    drop(vault);
    let mut users: Vec<(String, String)> = Vec::new();
    for bot in bots {
        for r in s.engine.status(&bot, None)?.secrets {
            if r.source == crate::engine::executor::SecretSource::Team {
                users.push((r.secret, format!("{bot}/{}", r.node)));
            }
        }
    }
    Ok(secrets
        .into_iter()
        .map(|info| {
            let used: Vec<String> = users
                .iter()
                .filter(|(n, _)| *n == info.name)
                .map(|(_, u)| u.clone())
                .collect();
            (info, used)
        })
        .collect())
}

async fn list_bot_secrets(
    State(state): Shared,
    caller: Caller,
    Path((team, bot)): Path<(String, String)>,
) -> ApiResult {
    caller.require(
        Some(Capability::SecretsList),
        Target::Bot {
            team: &team,
            bot: &bot,
        },
    )?;
    let listed = state
        .blocking(move |s| {
            let vault = s.vault();
            bot_in_team(&vault, &team, &bot)?;
            let secrets = vault.list_secrets(&Scope::Bot(bot.clone()))?;
            drop(vault);
            let requirements = s.engine.status(&bot, None)?.secrets;
            Ok(secrets
                .iter()
                .map(|info| {
                    let users = requirements
                        .iter()
                        .filter(|r| info.effective && r.secret == info.name)
                        .map(|r| r.node.clone());
                    secret_json(info, users)
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(json_ok(json!({ "secrets": listed })))
}

async fn put_team_secret(
    State(state): Shared,
    caller: Caller,
    Path((team, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require(Some(Capability::SecretsWrite), Target::Team(&team))?;
    let scope = Scope::Team(team);
    write_secret(state, caller, scope, None, name, headers, body).await
}

async fn put_bot_secret(
    State(state): Shared,
    caller: Caller,
    Path((team, bot, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require(
        Some(Capability::SecretsWrite),
        Target::Bot {
            team: &team,
            bot: &bot,
        },
    )?;
    let scope = Scope::Bot(bot);
    write_secret(state, caller, scope, Some(team), name, headers, body).await
}

async fn write_secret(
    state: Arc<AppState>,
    caller: Caller,
    scope: Scope,
    team_of_bot: Option<String>,
    name: String,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let name = SecretName::new(&name)?;
    let expected = precondition(&headers)?;
    require_json(&headers)?;
    let value = secret_value(&state.sealer, body, &scope, &name, expected)?;
    let actor = caller.id().to_owned();
    let location = format!(
        "{}/secrets/{name}",
        scope_path(&scope, team_of_bot.as_deref())
    );
    let (outcome, version) = state
        .blocking(move |s| {
            store_secret(
                s,
                &actor,
                &scope,
                team_of_bot.as_deref(),
                &name,
                value,
                expected,
            )
        })
        .await?;
    let status = match outcome {
        crate::vault::SetOutcome::Created => StatusCode::CREATED,
        crate::vault::SetOutcome::Overwritten => StatusCode::OK,
    };
    let mut response = (
        status,
        json_ok(json!({"version": version, "location": location})),
    )
        .into_response();
    response.headers_mut().insert(header::ETAG, etag(version));
    if status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::from_str(&location)
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Seals `value` into the vault for `actor`, after checking that a bot
/// scope belongs to `team_of_bot`; the API and the web UI both write here.
pub(super) fn store_secret(
    s: &AppState,
    actor: &str,
    scope: &Scope,
    team_of_bot: Option<&str>,
    name: &SecretName,
    value: SecretValue,
    expected: Precondition,
) -> Result<(crate::vault::SetOutcome, u64), Problem> {
    let mut vault = s.vault();
    if let (Some(team), Scope::Bot(bot)) = (team_of_bot, scope) {
        bot_in_team(&vault, team, bot)?;
    }
    let written = vault
        .acting_as(actor)
        .set_secret_checked(scope, name, &value, expected)?;
    drop(value);
    rebuild_log_scrubber(s, &mut vault);
    Ok(written)
}

/// Deletes a secret for `actor` (the API's and the web UI's path).
pub(super) fn erase_secret(
    s: &AppState,
    actor: &str,
    scope: &Scope,
    team_of_bot: Option<&str>,
    name: &SecretName,
    expected: Precondition,
) -> Result<(), Problem> {
    let mut vault = s.vault();
    if let (Some(team), Scope::Bot(bot)) = (team_of_bot, scope) {
        bot_in_team(&vault, team, bot)?;
    }
    vault
        .acting_as(actor)
        .delete_secret_checked(scope, name, expected)?;
    rebuild_log_scrubber(s, &mut vault);
    Ok(())
}

async fn delete_team_secret(
    State(state): Shared,
    caller: Caller,
    Path((team, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    caller.require(Some(Capability::SecretsWrite), Target::Team(&team))?;
    remove_secret(state, caller, Scope::Team(team), None, name, headers).await
}

async fn delete_bot_secret(
    State(state): Shared,
    caller: Caller,
    Path((team, bot, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    caller.require(
        Some(Capability::SecretsWrite),
        Target::Bot {
            team: &team,
            bot: &bot,
        },
    )?;
    remove_secret(state, caller, Scope::Bot(bot), Some(team), name, headers).await
}

async fn remove_secret(
    state: Arc<AppState>,
    caller: Caller,
    scope: Scope,
    team_of_bot: Option<String>,
    name: String,
    headers: HeaderMap,
) -> ApiResult {
    let name = SecretName::new(&name)?;
    let expected = precondition(&headers)?;
    let actor = caller.id().to_owned();
    state
        .blocking(move |s| erase_secret(s, &actor, &scope, team_of_bot.as_deref(), &name, expected))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ----- configurations, deploy, pause -----

async fn secret_requirements(
    State(state): Shared,
    caller: Caller,
    Path((team, bot)): Path<(String, String)>,
) -> ApiResult {
    caller.require(
        Some(Capability::SecretsList),
        Target::Bot {
            team: &team,
            bot: &bot,
        },
    )?;
    let status = state
        .blocking(move |s| {
            bot_in_team(&s.vault(), &team, &bot)?;
            Ok(s.engine.status(&bot, None)?)
        })
        .await?;
    let missing = status.missing().count();
    Ok(json_ok(json!({
        "bot": status.bot,
        "paused": status.paused,
        "graph_version": status.graph_version,
        "requirements": status.secrets,
        "missing": missing,
        "pins": status.pins,
        "triggers": status.triggers,
    })))
}

async fn show_deployment(
    State(state): Shared,
    caller: Caller,
    Path((team, bot)): Path<(String, String)>,
) -> ApiResult {
    caller.require(
        Some(Capability::BotsDeploy),
        Target::Bot {
            team: &team,
            bot: &bot,
        },
    )?;
    let deployment = state
        .blocking(move |s| {
            bot_in_team(&s.vault(), &team, &bot)?;
            s.engine
                .store()
                .active_deployment(&bot)?
                .ok_or_else(|| Problem::not_found(format!("bot {bot} has no deployed graph")))
        })
        .await?;
    let graph: Value = serde_json::from_str(&deployment.graph).unwrap_or(Value::Null);
    Ok(json_ok(json!({
        "graph_version": deployment.graph_version,
        "graph": graph,
        "pins": deployment.pins,
        "deployed_at": format_time(deployment.deployed_at),
    })))
}

async fn deploy(
    State(state): Shared,
    caller: Caller,
    Path((team, bot)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require(
        Some(Capability::BotsDeploy),
        Target::Bot {
            team: &team,
            bot: &bot,
        },
    )?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| Problem::bad_request("the graph must be UTF-8 JSON"))?
        .to_owned();
    // Not JSON at all is a malformed request (400); JSON that is not a
    // graph is invalid input (422, from the graph's own checks below).
    json_body::<serde::de::IgnoredAny>(&headers, text.as_bytes())?;
    let actor = caller.id().to_owned();
    let (deployment, changes) = state
        .blocking(move |s| deploy_document(s, &actor, &team, &bot, &text))
        .await?;
    state.schedules_changed.notify_one();
    Ok(json_ok(json!({
        "graph_version": deployment.graph_version,
        "pins": deployment.pins,
        "changes": changes,
    })))
}

/// Deploys the graph document `text` to `bot` for `actor`, audited (the
/// API's and the web UI's path). The caller wakes the scheduler.
pub(super) fn deploy_document(
    s: &AppState,
    actor: &str,
    team: &str,
    bot: &str,
    text: &str,
) -> Result<(crate::engine::store::Deployment, Vec<String>), Problem> {
    bot_in_team(&s.vault(), team, bot)?;
    let graph =
        Graph::parse(text, Some(Format::Json)).map_err(|e| Problem::invalid(e.to_string()))?;
    let deployed = s.engine.deploy_with_changes(bot, &graph)?;
    s.vault().acting_as(actor).audit_action(
        "bot.deploy",
        Some(&Scope::Bot(bot.to_owned())),
        None,
        &format!("graph {}", deployed.0.graph_version),
    )?;
    Ok(deployed)
}

/// Pauses or resumes `bot` for `actor`, audited.
pub(super) fn pause_bot(
    s: &AppState,
    actor: &str,
    team: &str,
    bot: &str,
    paused: bool,
) -> Result<(), Problem> {
    bot_in_team(&s.vault(), team, bot)?;
    s.engine.set_paused(bot, paused)?;
    s.vault().acting_as(actor).audit_action(
        if paused { "bot.pause" } else { "bot.resume" },
        Some(&Scope::Bot(bot.to_owned())),
        None,
        "",
    )?;
    Ok(())
}

async fn pause(State(state): Shared, caller: Caller, path: Path<(String, String)>) -> ApiResult {
    set_paused(state, caller, path, true).await
}

async fn resume(State(state): Shared, caller: Caller, path: Path<(String, String)>) -> ApiResult {
    set_paused(state, caller, path, false).await
}

async fn set_paused(
    state: Arc<AppState>,
    caller: Caller,
    Path((team, bot)): Path<(String, String)>,
    paused: bool,
) -> ApiResult {
    caller.require(
        Some(Capability::BotsPause),
        Target::Bot {
            team: &team,
            bot: &bot,
        },
    )?;
    let actor = caller.id().to_owned();
    let name = bot.clone();
    state
        .blocking(move |s| pause_bot(s, &actor, &team, &name, paused))
        .await?;
    Ok(json_ok(json!({"bot": bot, "paused": paused})))
}

// ----- runs and executions -----

/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

async fn start_run(
    State(state): Shared,
    bearer: Bearer,
    Path((team, bot)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let location_base = format!("/api/v1/teams/{team}/bots/{bot}/executions");
    // The hot path: the token check, the bot check and the snapshot share
    // one trip to the blocking pool, and the commit is awaited, not
    // waited for on a thread.
    let run = state
        .blocking(move |s| {
            let caller = bearer.authenticate(s)?;
            caller.require(
                Some(Capability::RunsStart),
                Target::Bot {
                    team: &team,
                    bot: &bot,
                },
            )?;
            let trigger: Value = if body.is_empty() {
                json!({})
            } else {
                json_body(&headers, &body)?
            };
            let key = idempotency_key(&headers)?;
            prepare_run(s, &team, &bot, &trigger, key.as_deref(), caller.id())
        })
        .await?;
    let enqueued = enqueue_run(&state, run).await?;
    let location = format!("{location_base}/{}", enqueued.id);
    let mut response = (
        StatusCode::ACCEPTED,
        json_ok(json!({
            "execution_id": enqueued.id.as_str(),
            "status": enqueued.status,
            "replayed": enqueued.replayed,
            "location": location,
        })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// A run of `bot` for `trigger`, ready to enqueue: the bot is checked to
/// be `team`'s and its secrets are snapshotted (the vault's lock is not
/// held across the commit). Shared by the API and the UI's Run now.
pub(super) fn prepare_run(
    s: &AppState,
    team: &str,
    bot: &str,
    trigger: &Value,
    key: Option<&str>,
    actor: &str,
) -> Result<crate::engine::queue::QueuedRun, Problem> {
    let snapshot = {
        let mut vault = s.vault();
        bot_in_team(&vault, team, bot)?;
        vault.snapshot_for_bot(bot)?
    };
    Ok(s.engine.queued_run(&snapshot, trigger, key, Some(actor))?)
}

/// Enqueues `run`, waking a worker unless it replayed an earlier run.
pub(super) async fn enqueue_run(
    state: &Arc<AppState>,
    run: crate::engine::queue::QueuedRun,
) -> Result<crate::engine::queue::Enqueued, Problem> {
    let enqueued = state.engine.enqueue(run, state.config.queue_bound).await?;
    if !enqueued.replayed {
        state.wake.notify_one();
    }
    Ok(enqueued)
}

async fn list_executions(
    State(state): Shared,
    caller: Caller,
    Path((team, bot)): Path<(String, String)>,
) -> ApiResult {
    caller.require(
        Some(Capability::ExecutionsRead),
        Target::Bot {
            team: &team,
            bot: &bot,
        },
    )?;
    let listed = state
        .blocking(move |s| {
            bot_in_team(&s.vault(), &team, &bot)?;
            Ok(s.engine.store().executions(Some(&bot), 100)?)
        })
        .await?;
    let listed: Vec<Value> = listed
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id.as_str(),
                "bot": e.bot,
                "graph_version": e.graph_version,
                "status": e.status,
                "started_at": format_time(e.started_at),
                "finished_at": e.finished_at.map(format_time),
                "summary": e.summary,
            })
        })
        .collect();
    Ok(json_ok(json!({ "executions": listed })))
}

async fn show_execution(
    State(state): Shared,
    caller: Caller,
    Path((team, bot, id)): Path<(String, String, String)>,
) -> ApiResult {
    caller.require(
        Some(Capability::ExecutionsRead),
        Target::Bot {
            team: &team,
            bot: &bot,
        },
    )?;
    let (execution, runs) = state
        .blocking(move |s| execution_of(s, &team, &bot, &id))
        .await?;
    let trigger: Value = serde_json::from_str(&execution.trigger).unwrap_or(Value::Null);
    let finished = !matches!(
        execution.status,
        ExecutionStatus::Queued | ExecutionStatus::Running
    );
    Ok(json_ok(json!({
        "id": execution.id.as_str(),
        "bot": execution.bot,
        "graph_version": execution.graph_version,
        "status": execution.status,
        "finished": finished,
        "started_at": format_time(execution.started_at),
        "finished_at": execution.finished_at.map(format_time),
        "summary": execution.summary,
        "started_by": execution.started_by,
        "trigger": trigger,
        "nodes": runs.iter().map(node_json).collect::<Vec<_>>(),
    })))
}

/// Execution `id` of `bot` with its node runs. Another bot's execution id
/// is "not found" here, not "forbidden".
pub(super) fn execution_of(
    s: &AppState,
    team: &str,
    bot: &str,
    id: &str,
) -> Result<
    (
        crate::engine::store::Execution,
        Vec<crate::engine::store::NodeRun>,
    ),
    Problem,
> {
    bot_in_team(&s.vault(), team, bot)?;
    let not_found = || Problem::not_found(format!("bot {bot} has no execution {id}"));
    let (execution, runs) = s
        .engine
        .store()
        .execution(&ExecutionId::from(id.to_owned()))?
        .ok_or_else(not_found)?;
    if execution.bot != bot {
        return Err(not_found());
    }
    Ok((execution, runs))
}

fn node_json(run: &crate::engine::store::NodeRun) -> Value {
    json!({
        "node": run.node,
        "extension": run.extension,
        "status": run.status,
        "started_at": format_time(run.started_at),
        "duration_ms": run.duration_ms,
        "output": run.output.as_deref().and_then(|o| serde_json::from_str::<Value>(o).ok()),
        "error": run.error,
        "logs": run.logs,
        "stdout": run.stdout,
        "stderr": run.stderr,
        "secrets_read": run.secrets_read,
        "egress": run.egress,
        "egress_dropped": run.egress_dropped,
    })
}

// ----- extensions -----

/// Largest component an upload may carry.
const MAX_COMPONENT: usize = 64 * 1024 * 1024;

fn extension_json(e: &crate::engine::store::InstalledExtension) -> Value {
    json!({
        "name": e.name,
        "version": e.version,
        "sha256": e.sha256,
        "installed_at": format_time(e.installed_at),
        // Whether it imports `secrets.get` and so can hold plaintext; the
        // same mark is inside `description`, kept on top for clients.
        "reveals_secrets": e.description.reveals_secrets,
        "description": e.description,
    })
}

async fn list_extensions(State(state): Shared, caller: Caller) -> ApiResult {
    caller.require(None, Target::Catalog)?;
    let installed = state
        .blocking(|s| Ok(s.engine.store().extensions()?))
        .await?;
    Ok(json_ok(json!({
        "extensions": installed.iter().map(extension_json).collect::<Vec<_>>()
    })))
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<String>,
}

async fn show_extension(
    State(state): Shared,
    caller: Caller,
    Path(name): Path<String>,
    axum::extract::Query(query): axum::extract::Query<VersionQuery>,
) -> ApiResult {
    caller.require(None, Target::Catalog)?;
    let (found, versions) = state
        .blocking(move |s| {
            let store = s.engine.store();
            let not_found = || {
                Problem::not_found(match &query.version {
                    Some(v) => format!("extension {name} has no version {v} installed"),
                    None => format!("extension {name} is not installed"),
                })
            };
            let found = store
                .extension(&name, query.version.as_deref())?
                .ok_or_else(not_found)?;
            let versions: Vec<String> = store
                .versions(&name)?
                .into_iter()
                .map(|e| e.version)
                .collect();
            Ok((found, versions))
        })
        .await?;
    let mut body = extension_json(&found);
    body["versions"] = json!(versions);
    Ok(json_ok(body))
}

async fn install_extension(
    State(state): Shared,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    caller.require(Some(Capability::ExtensionsInstall), Target::Catalog)?;
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if !media.eq_ignore_ascii_case("application/wasm") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the component's bytes with `Content-Type: application/wasm`",
        ));
    }
    let engine = state.engine.clone();
    let actor = caller.id().to_owned();
    let handle = tokio::runtime::Handle::current();
    // Compiling a component takes a while: off the async workers.
    let report = tokio::task::spawn_blocking(move || -> Result<_, Problem> {
        let store = engine.store().reopen()?;
        let mut registry = crate::engine::registry::Registry::new(store, engine.runtime());
        Ok(handle.block_on(registry.install_bytes(&body, "the uploaded component"))?)
    })
    .await
    .map_err(|e| Problem::internal("installing the extension", &e))??;
    use crate::engine::registry::InstallOutcome;
    let (status, outcome, changes) = match &report.outcome {
        InstallOutcome::Installed => (StatusCode::CREATED, "installed", Vec::new()),
        InstallOutcome::AlreadyInstalled { .. } => {
            (StatusCode::OK, "already_installed", Vec::new())
        }
        InstallOutcome::NewVersion { diff, .. } => (
            StatusCode::CREATED,
            "new_version",
            diff.to_string().lines().map(str::to_owned).collect(),
        ),
    };
    let detail = format!(
        "{} {} (sha256 {}): {outcome}",
        report.extension.name, report.extension.version, report.extension.sha256
    );
    state
        .blocking(move |s| {
            Ok(s.vault().acting_as(&actor).audit_action(
                "extension.install",
                None,
                None,
                &detail,
            )?)
        })
        .await?;
    let mut body = extension_json(&report.extension);
    body["outcome"] = json!(outcome);
    body["changes"] = json!(changes);
    Ok((status, axum::Json(body)).into_response())
}

// ----- audit -----

async fn audit(State(state): Shared, caller: Caller) -> ApiResult {
    caller.require(Some(Capability::AuditRead), Target::Teams)?;
    let entries = state.blocking(|s| Ok(s.vault().audit(Some(1000))?)).await?;
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id, "at": format_time(e.at_ms), "actor": e.actor, "action": e.action,
                "scope": e.scope, "owner": e.owner, "name": e.name, "detail": e.detail,
            })
        })
        .collect();
    Ok(json_ok(json!({ "entries": entries })))
}

// ----- helpers -----

fn json_ok(value: Value) -> Response {
    axum::Json(value).into_response()
}

fn created(location: &str, body: Value) -> Response {
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// 404 unless `bot` exists and belongs to `team`.
pub(super) fn bot_in_team(vault: &Vault, team: &str, bot: &str) -> Result<(), Problem> {
    let actual = vault.team_of_bot(bot)?;
    if actual != team {
        return Err(Problem::not_found(format!("team {team} has no bot {bot}")));
    }
    Ok(())
}

fn scope_path(scope: &Scope, team_of_bot: Option<&str>) -> String {
    match scope {
        Scope::Team(team) => format!("/api/v1/teams/{team}"),
        Scope::Bot(bot) => format!("/api/v1/teams/{}/bots/{bot}", team_of_bot.unwrap_or("")),
    }
}

fn secret_json(info: &SecretInfo, used_by: impl Iterator<Item = String>) -> Value {
    let (scope, owner) = match &info.scope {
        Scope::Bot(bot) => ("bot", bot),
        Scope::Team(team) => ("team", team),
    };
    json!({
        "name": info.name,
        "scope": scope,
        "owner": owner,
        "version": info.version,
        "created_at": format_time(info.created_at_ms),
        "updated_at": format_time(info.updated_at_ms),
        "updated_by": info.updated_by,
        "fingerprint": info.fingerprint,
        "effective": info.effective,
        "used_by": used_by.collect::<Vec<_>>(),
    })
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits and quotes are a valid header")
}

/// `If-Match: "N"` (or `N`) and `If-None-Match: *`.
fn precondition(headers: &HeaderMap) -> Result<Precondition, Problem> {
    let if_match = headers.get(header::IF_MATCH);
    let if_none_match = headers.get(header::IF_NONE_MATCH);
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(Problem::bad_request(
            "give If-Match or If-None-Match, not both",
        )),
        (Some(v), None) => {
            let text = v.to_str().unwrap_or("").trim();
            let digits = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
            digits
                .parse::<u64>()
                .ok()
                .filter(|v| *v > 0)
                .map(Precondition::Version)
                .ok_or_else(|| {
                    Problem::bad_request(
                        "If-Match must be a secret version as the list shows it, like \"3\"",
                    )
                })
        }
        (None, Some(v)) if v.as_bytes() == b"*" => Ok(Precondition::Absent),
        (None, Some(_)) => Err(Problem::bad_request(
            "If-None-Match takes only *, meaning \"create, do not overwrite\"",
        )),
        (None, None) => Ok(Precondition::Any),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value.to_str().ok().map(str::trim).unwrap_or("");
    if text.is_empty()
        || text.len() > MAX_IDEMPOTENCY_KEY
        || !text.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Problem::bad_request(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters (a UUID, say)"
        )));
    }
    Ok(Some(text.to_owned()))
}

fn require_json(headers: &HeaderMap) -> Result<(), Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        "send the body as JSON, with `Content-Type: application/json`",
    ))
}

/// Parses a JSON request body: 415 without a JSON content type, 400 for
/// text that is not JSON, 422 for JSON of the wrong shape.
fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Problem> {
    require_json(headers)?;
    serde_json::from_slice(body).map_err(|e| {
        let detail = format!("the request body {}", describe_json_error(&e));
        if e.is_data() {
            Problem::invalid(detail)
        } else {
            Problem::bad_request(detail)
        }
    })
}

/// A serde_json error in words, without quoting the input back.
fn describe_json_error(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data => format!("has the wrong shape: {e}"),
        serde_json::error::Category::Eof => "ends before the JSON does".to_owned(),
        _ => format!(
            "is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
    }
}

/// The value of a secret write to `scope`/`name` expecting `expected`. The
/// body is wiped once parsed; errors never quote it.
fn secret_value(
    sealer: &super::seal::Sealer,
    body: Bytes,
    scope: &Scope,
    name: &SecretName,
    expected: Precondition,
) -> Result<SecretValue, Problem> {
    const SHAPE: &str = "the body must be exactly {\"value\": \"…\"} with the value as a JSON string, or {\"sealed\": {\"key_id\", \"enc\", \"ciphertext\"}} (see GET /api/v1/seal-key)";
    let mut buf: Vec<u8> = Vec::from(body);
    let parsed = serde_json::from_slice::<SecretBody>(&buf);
    buf.zeroize();
    let body = parsed.map_err(|e| {
        // A data error's message may quote a field; say only where it is.
        let detail = match e.classify() {
            serde_json::error::Category::Data => SHAPE.to_owned(),
            _ => format!("the request body {}", describe_json_error(&e)),
        };
        if e.is_data() {
            Problem::invalid(detail)
        } else {
            Problem::bad_request(detail)
        }
    })?;
    match body {
        SecretBody {
            value: Some(value),
            sealed: None,
        } => Ok(SecretValue::new(value)?),
        SecretBody {
            value: None,
            sealed: Some(envelope),
        } => open_sealed(sealer, &envelope, scope, name, expected),
        SecretBody { value, .. } => {
            drop(value.map(zeroize::Zeroizing::new));
            Err(Problem::invalid(SHAPE))
        }
    }
}

/// Opens a sealed value for exactly this write ([`super::seal::Binding`]).
pub(super) fn open_sealed(
    sealer: &super::seal::Sealer,
    envelope: &super::seal::Envelope,
    scope: &Scope,
    name: &SecretName,
    expected: Precondition,
) -> Result<SecretValue, Problem> {
    use super::seal::{Binding, Error};
    let opened = Binding::of(scope, name, expected).and_then(|b| sealer.open(envelope, &b));
    match opened {
        Ok(text) => Ok(SecretValue::new(String::clone(&text))?),
        Err(e @ Error::Unbound) => Err(Problem::bad_request(e.to_string())),
        Err(e) => Err(Problem::invalid(e.to_string())),
    }
}

async fn seal_key(State(state): Shared) -> Response {
    json_ok(json!({
        "suite": super::seal::SUITE,
        "kem_id": 0x0020, "kdf_id": 0x0001, "aead_id": 0x0002,
        "info": String::from_utf8_lossy(super::seal::INFO),
        "key_id": state.sealer.key_id(),
        "public_key": state.sealer.public_key(),
        "aad": "JSON array [\"narakim-secret-v1\", SCOPE, OWNER, NAME, EXPECTED] with SCOPE bot or team, EXPECTED \"new\" or the version to overwrite",
    }))
}

fn rebuild_log_scrubber(state: &AppState, vault: &mut Vault) {
    if let Err(e) = state.log_scrubber.rebuild(vault) {
        tracing::error!("the log scrubber could not be rebuilt after a secret change: {e}");
    }
}

impl From<InputError> for Problem {
    fn from(e: InputError) -> Problem {
        Problem::invalid(e.to_string())
    }
}
