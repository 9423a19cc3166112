//! The page handlers: check the caller as the API would, gather names,
//! versions and scrubbed records into a view, render it.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::UiError;
use super::pages::{self, Chrome};
use super::session::{self, Signed};
use crate::engine::executor::{EngineError, SecretSource};
use crate::engine::graph::{Format, Graph};
use crate::service::AppState;
use crate::service::api::{
    self, bot_in_team, deploy_document, erase_secret, execution_of, open_sealed, pause_bot,
    store_secret, team_secrets_in_use,
};
use crate::service::auth::Target;
use crate::service::problem::Problem;
use crate::vault::access::{Capability, TokenScope};
use crate::vault::{Precondition, Scope, SecretName, format_time};

type Shared = State<Arc<AppState>>;
type Page = Result<Response, UiError>;

fn chrome(signed: &Signed) -> Chrome {
    let token = &signed.caller.0;
    Chrome {
        csrf: signed.csrf.clone(),
        who: format!("{} ({})", token.id, token.scope),
        team: match &token.scope {
            TokenScope::Team(team) => Some(team.clone()),
            _ => None,
        },
        audit: matches!(token.scope, TokenScope::Admin) && token.can(Capability::AuditRead),
    }
}

fn html(status: StatusCode, markup: maud::Markup) -> Response {
    (status, axum::response::Html(markup.into_string())).into_response()
}

/// A 303 to `location`, built from names in the path. A name that cannot
/// be a header (a decoded `%0d%0a`) is not followed anywhere.
fn see_other(location: &str) -> Response {
    match axum::http::HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => UiError::Problem(Problem::bad_request(
            "the address names a team, bot or secret that cannot exist",
        ))
        .into_response(),
    }
}

/// Guest-chosen text (logs, output, errors, descriptions) as a page may
/// show it: no control, line-separator or bidi character survives, so it
/// cannot forge lines or reverse what an operator reads.
fn shown(text: &str) -> String {
    crate::redact::printable_lines(text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line of guest-chosen text, as [`shown`] but newlines escaped too.
fn shown_line(text: &str) -> String {
    crate::redact::printable(text).into_owned()
}

/// A recorded request as a curl command an operator can copy: values are
/// never in a record, so `‹NAME›` stands where a credential went (put the
/// value in by hand to replay it). `None` for records without a URL.
fn curl(event: &crate::runtime::EgressEvent) -> Option<String> {
    if event.url.is_empty() {
        return None;
    }
    let quote = |text: &str| format!("'{}'", shown_line(text).replace('\'', "'\\''"));
    let mut command = format!("curl -X {} {}", quote(&event.method), quote(&event.url));
    for (name, value) in &event.headers {
        command.push_str(" \\\n  -H ");
        command.push_str(&quote(&format!("{name}: {value}")));
    }
    Some(command)
}

// ----- sign-in -----

pub async fn sign_in_page(State(state): Shared, headers: HeaderMap) -> Response {
    let secure = state.config.tls.is_some();
    let csrf = session::cookie(&headers, session::SIGN_IN_COOKIE)
        .filter(|c| c.len() == 43)
        .map(str::to_owned)
        .unwrap_or_else(session::random_id);
    let cookie = session::set_cookie(
        session::SIGN_IN_COOKIE,
        &csrf,
        Some(std::time::Duration::from_secs(3600)),
        secure,
    );
    (
        [(header::SET_COOKIE, cookie)],
        axum::response::Html(pages::sign_in(&csrf, None).into_string()),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[allow(dead_code)]
    csrf: String,
    token: String,
}

pub async fn sign_in(
    State(state): Shared,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let token = Zeroizing::new(form.token.trim().to_owned());
    drop(Zeroizing::new(form.token));
    let csrf = session::cookie(&headers, session::SIGN_IN_COOKIE)
        .unwrap_or("")
        .to_owned();
    let checked = state
        .blocking(move |s| Ok(s.vault().open_session(&token, session::SESSION_TTL)?))
        .await;
    match checked {
        Ok((_, opened)) => {
            let secure = state.config.tls.is_some();
            let left = opened.expires_at.saturating_sub(crate::trigger::now_ms());
            let ttl = std::time::Duration::from_millis(left.max(0) as u64);
            let mut response = see_other("/ui/");
            let h = response.headers_mut();
            for cookie in [
                session::set_cookie(session::COOKIE, &opened.id, Some(ttl), secure),
                session::set_cookie(session::SIGN_IN_COOKIE, "", None, secure),
            ] {
                if let Ok(v) = cookie.parse() {
                    h.append(header::SET_COOKIE, v);
                }
            }
            response
        }
        Err(p) => html(
            StatusCode::UNAUTHORIZED,
            pages::sign_in(&csrf, Some(&p.detail)),
        ),
    }
}

pub async fn sign_out(State(state): Shared, headers: HeaderMap) -> Response {
    if let Some(id) = session::cookie(&headers, session::COOKIE).map(str::to_owned) {
        // Signing out still clears the cookie if the database is away;
        // the session then ends with its TTL.
        if let Err(p) = state
            .blocking(move |s| Ok(s.vault().close_session(&id)?))
            .await
        {
            tracing::warn!("a session could not be closed: {}", p.detail);
        }
    }
    let mut response = see_other("/ui/sign-in");
    let cookie = session::set_cookie(session::COOKIE, "", None, state.config.tls.is_some());
    if let Ok(v) = cookie.parse() {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

// ----- home -----

pub async fn home(State(state): Shared, signed: Signed) -> Page {
    let scope = signed.caller.0.scope.clone();
    if let TokenScope::Bot { team, bot } = &scope {
        return Ok(html(
            StatusCode::OK,
            pages::home(&chrome(&signed), &[], Some((team, bot))),
        ));
    }
    let teams = state
        .blocking(move |s| {
            let vault = s.vault();
            let bots = vault.list_bots()?;
            let teams: Vec<String> = match &scope {
                TokenScope::Team(team) => vec![team.clone()],
                _ => vault.list_teams()?.into_iter().map(|t| t.name).collect(),
            };
            Ok(teams
                .into_iter()
                .map(|name| pages::TeamLink {
                    bots: bots
                        .iter()
                        .filter(|b| b.team == name)
                        .map(|b| b.name.clone())
                        .collect(),
                    name,
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(html(
        StatusCode::OK,
        pages::home(&chrome(&signed), &teams, None),
    ))
}

// ----- secrets -----

/// The fields of every secret form.
#[derive(Deserialize)]
pub struct SecretForm {
    name: String,
    /// `new` or the version being overwritten.
    expected: String,
    /// The HPKE envelope as JSON (empty when the page ran no script).
    #[serde(default)]
    sealed: String,
}

fn expected_of(text: &str) -> Result<Precondition, Problem> {
    match text.trim() {
        "new" => Ok(Precondition::Absent),
        digits => digits
            .parse::<u64>()
            .ok()
            .filter(|v| *v > 0)
            .map(Precondition::Version)
            .ok_or_else(|| Problem::bad_request("the form's expected version must be `new` or a version number; reload the page")),
    }
}

/// Opens the form's sealed value for this exact write and stores it.
fn save_sealed(
    s: &AppState,
    actor: &str,
    scope: &Scope,
    team_of_bot: Option<&str>,
    form: &SecretForm,
) -> Result<(SecretName, u64), Problem> {
    let name = SecretName::new(form.name.trim())?;
    let expected = expected_of(&form.expected)?;
    if form.sealed.trim().is_empty() {
        return Err(Problem::bad_request(
            "the value was not sealed: saving a secret needs JavaScript, which seals the value in the page before it is sent; enable it and try again",
        ));
    }
    let envelope: crate::service::seal::Envelope = serde_json::from_str(&form.sealed)
        .map_err(|_| Problem::bad_request("the sealed value is not an envelope of key_id, enc and ciphertext; reload the page and try again"))?;
    let value = open_sealed(&s.sealer, &envelope, scope, &name, expected)?;
    let (_, version) = store_secret(s, actor, scope, team_of_bot, &name, value, expected)?;
    Ok((name, version))
}

/// A failed save, explained for the page: a version conflict says what
/// changed and that nothing was saved.
fn save_error(p: &Problem, name: &str) -> String {
    if p.status == 412 {
        let what = p.detail.split(';').next().unwrap_or("");
        format!(
            "Conflict: {name} was changed since this page was loaded, so nothing was saved ({what}). The table shows the current version now: enter the value again to overwrite it."
        )
    } else {
        format!("Not saved: {}", p.detail)
    }
}

#[derive(Deserialize, Default)]
pub struct Notice {
    saved: Option<String>,
    deleted: Option<String>,
    version: Option<u64>,
}

impl Notice {
    /// The message, from names and numbers only (checked, never echoed raw).
    fn text(&self) -> Option<String> {
        let valid = |n: &Option<String>| {
            n.as_deref()
                .and_then(|n| SecretName::new(n).ok())
                .map(|n| n.as_str().to_owned())
        };
        if let Some(name) = valid(&self.saved) {
            return Some(match self.version {
                Some(v) => format!("Saved {name} (version {v}). The next execution uses it."),
                None => format!("Saved {name}."),
            });
        }
        valid(&self.deleted).map(|name| format!("Deleted {name}."))
    }
}

async fn team_secrets_view(
    state: &Arc<AppState>,
    team: String,
    notice: Option<String>,
    error: Option<String>,
) -> Result<pages::TeamSecrets, UiError> {
    let rows = state
        .blocking({
            let team = team.clone();
            move |s| team_secrets_in_use(s, &team)
        })
        .await?
        .into_iter()
        .map(|(info, used_by)| pages::SecretRow {
            name: info.name,
            version: info.version,
            updated_at: format_time(info.updated_at_ms),
            updated_by: info.updated_by.unwrap_or_else(|| "—".into()),
            used_by,
        })
        .collect();
    Ok(pages::TeamSecrets {
        team,
        rows,
        notice,
        error,
    })
}

pub async fn team_secrets(
    State(state): Shared,
    signed: Signed,
    Path(team): Path<String>,
    Query(notice): Query<Notice>,
) -> Page {
    signed
        .caller
        .require(Some(Capability::SecretsList), Target::Team(&team))?;
    let view = team_secrets_view(&state, team, notice.text(), None).await?;
    Ok(html(
        StatusCode::OK,
        pages::team_secrets(&chrome(&signed), &view),
    ))
}

pub async fn save_team_secret(
    State(state): Shared,
    signed: Signed,
    Path(team): Path<String>,
    Form(form): Form<SecretForm>,
) -> Page {
    signed
        .caller
        .require(Some(Capability::SecretsWrite), Target::Team(&team))?;
    let actor = signed.caller.id().to_owned();
    let scope = Scope::Team(team.clone());
    let shown_name = form.name.clone();
    let saved = state
        .blocking(move |s| save_sealed(s, &actor, &scope, None, &form))
        .await;
    match saved {
        Ok((name, version)) => Ok(see_other(&format!(
            "/ui/teams/{team}/secrets?saved={name}&version={version}"
        ))),
        Err(p) => {
            let status = conflict_status(&p);
            let error = save_error(&p, &printable_name(&shown_name));
            let view = team_secrets_view(&state, team, None, Some(error)).await?;
            Ok(html(status, pages::team_secrets(&chrome(&signed), &view)))
        }
    }
}

/// 409 for a version conflict (the page shows the current state), the
/// problem's own status otherwise.
fn conflict_status(p: &Problem) -> StatusCode {
    if p.status == 412 {
        StatusCode::CONFLICT
    } else {
        StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST)
    }
}

/// A name from a form, for a message: only if it is a valid name.
fn printable_name(name: &str) -> String {
    SecretName::new(name.trim())
        .map(|n| n.as_str().to_owned())
        .unwrap_or_else(|_| "the secret".to_owned())
}

#[derive(Deserialize)]
pub struct VersionQuery {
    version: Option<u64>,
}

pub async fn confirm_team_delete(
    signed: Signed,
    Path((team, name)): Path<(String, String)>,
    Query(q): Query<VersionQuery>,
) -> Page {
    signed
        .caller
        .require(Some(Capability::SecretsWrite), Target::Team(&team))?;
    let name = SecretName::new(&name).map_err(Problem::from)?;
    let version = q.version.ok_or_else(|| {
        Problem::bad_request("open Delete from the secrets list (it names the version)")
    })?;
    Ok(html(
        StatusCode::OK,
        pages::confirm_delete(
            &chrome(&signed),
            &format!("/ui/teams/{team}/secrets/{name}/delete"),
            &format!("/ui/teams/{team}/secrets"),
            &format!("the team secret {name} of team {team}"),
            version,
        ),
    ))
}

#[derive(Deserialize)]
pub struct ExpectedForm {
    expected: String,
}

pub async fn delete_team_secret(
    State(state): Shared,
    signed: Signed,
    Path((team, name)): Path<(String, String)>,
    Form(form): Form<ExpectedForm>,
) -> Page {
    signed
        .caller
        .require(Some(Capability::SecretsWrite), Target::Team(&team))?;
    let actor = signed.caller.id().to_owned();
    let name = SecretName::new(&name).map_err(Problem::from)?;
    let expected = expected_of(&form.expected)?;
    let scope = Scope::Team(team.clone());
    let deleted = {
        let name = name.clone();
        state
            .blocking(move |s| erase_secret(s, &actor, &scope, None, &name, expected))
            .await
    };
    match deleted {
        Ok(()) => Ok(see_other(&format!(
            "/ui/teams/{team}/secrets?deleted={name}"
        ))),
        Err(p) => {
            let error = save_error(&p, name.as_str()).replacen(
                "Nothing was saved",
                "Nothing was deleted",
                1,
            );
            let view = team_secrets_view(&state, team, None, Some(error)).await?;
            Ok(html(
                conflict_status(&p),
                pages::team_secrets(&chrome(&signed), &view),
            ))
        }
    }
}

// ----- the Bot Dossier -----

async fn head(state: &Arc<AppState>, team: &str, bot: &str) -> Result<pages::DossierHead, UiError> {
    let (team, bot) = (team.to_owned(), bot.to_owned());
    Ok(state
        .blocking(move |s| {
            bot_in_team(&s.vault(), &team, &bot)?;
            let store = s.engine.store();
            let paused = store.is_paused(&bot)?;
            let graph_version = store.active_deployment(&bot)?.map(|d| d.graph_version);
            Ok(pages::DossierHead {
                team,
                bot,
                paused,
                graph_version,
            })
        })
        .await?)
}

fn bot_target<'a>(team: &'a str, bot: &'a str) -> Target<'a> {
    Target::Bot { team, bot }
}

pub async fn dossier(Path((team, bot)): Path<(String, String)>) -> Response {
    see_other(&format!("/ui/teams/{team}/bots/{bot}/configurations"))
}

async fn configurations_view(
    state: &Arc<AppState>,
    team: &str,
    bot: &str,
    notice: Option<String>,
    mut error: Option<String>,
) -> Result<pages::Configurations, UiError> {
    let head = head(state, team, bot).await?;
    let (team, bot) = (team.to_owned(), bot.to_owned());
    let (source, rows, draft_error) = state
        .blocking(move |s| {
            let draft = s.engine.store().draft(&bot)?;
            let deployed = s.engine.store().active_deployment(&bot)?.is_some();
            // The draft when there is one (what the next deploy needs),
            // else the deployed graph.
            let mut draft_error = None;
            let mut status = None;
            let mut source = None;
            if let Some(text) = &draft {
                match Graph::parse(text, Some(Format::Json))
                    .map_err(EngineError::from)
                    .and_then(|g| s.engine.status(&bot, Some(&g)))
                {
                    Ok(st) => {
                        status = Some(st);
                        source = Some("draft graph");
                    }
                    Err(e) => draft_error = Some(format!("The draft graph does not validate, so this shows the deployed graph: {e}")),
                }
            }
            if status.is_none() && deployed {
                status = Some(s.engine.status(&bot, None)?);
                source = Some("deployed graph");
            }
            let vault = s.vault();
            let bot_secrets = vault.list_secrets(&Scope::Bot(bot.clone()))?;
            let team_secrets = vault.list_secrets(&Scope::Team(team.clone()))?;
            drop(vault);
            let version_in = |list: &[crate::vault::SecretInfo], name: &str| {
                list.iter().find(|i| i.name == name).map(|i| i.version).unwrap_or(0)
            };
            let rows = status
                .map(|st| st.secrets)
                .unwrap_or_default()
                .into_iter()
                .map(|r| pages::ConfigRow {
                    resolution: match r.source {
                        SecretSource::Bot => pages::Resolution::Bot {
                            version: version_in(&bot_secrets, &r.secret),
                        },
                        SecretSource::Team => pages::Resolution::Team {
                            version: version_in(&team_secrets, &r.secret),
                        },
                        SecretSource::Trigger => pages::Resolution::Trigger,
                        SecretSource::Missing => pages::Resolution::Missing,
                    },
                    node: r.node,
                    extension: r.extension,
                    secret: r.secret,
                })
                .collect::<Vec<_>>();
            Ok((source, rows, draft_error))
        })
        .await?;
    if error.is_none() {
        error = draft_error;
    }
    Ok(pages::Configurations {
        head,
        source,
        rows,
        notice,
        error,
    })
}

pub async fn configurations(
    State(state): Shared,
    signed: Signed,
    Path((team, bot)): Path<(String, String)>,
    Query(notice): Query<Notice>,
) -> Page {
    signed
        .caller
        .require(Some(Capability::SecretsList), bot_target(&team, &bot))?;
    let view = configurations_view(&state, &team, &bot, notice.text(), None).await?;
    Ok(html(
        StatusCode::OK,
        pages::configurations(&chrome(&signed), &view),
    ))
}

pub async fn save_bot_secret(
    State(state): Shared,
    signed: Signed,
    Path((team, bot)): Path<(String, String)>,
    Form(form): Form<SecretForm>,
) -> Page {
    signed
        .caller
        .require(Some(Capability::SecretsWrite), bot_target(&team, &bot))?;
    let actor = signed.caller.id().to_owned();
    let scope = Scope::Bot(bot.clone());
    let shown_name = form.name.clone();
    let saved = {
        let team = team.clone();
        state
            .blocking(move |s| save_sealed(s, &actor, &scope, Some(&team), &form))
            .await
    };
    match saved {
        Ok((name, version)) => Ok(see_other(&format!(
            "/ui/teams/{team}/bots/{bot}/configurations?saved={name}&version={version}"
        ))),
        Err(p) => {
            let error = save_error(&p, &printable_name(&shown_name));
            let view = configurations_view(&state, &team, &bot, None, Some(error)).await?;
            Ok(html(
                conflict_status(&p),
                pages::configurations(&chrome(&signed), &view),
            ))
        }
    }
}

pub async fn confirm_bot_delete(
    signed: Signed,
    Path((team, bot, name)): Path<(String, String, String)>,
    Query(q): Query<VersionQuery>,
) -> Page {
    signed
        .caller
        .require(Some(Capability::SecretsWrite), bot_target(&team, &bot))?;
    let name = SecretName::new(&name).map_err(Problem::from)?;
    let version = q.version.ok_or_else(|| {
        Problem::bad_request("open Delete from the dossier (it names the version)")
    })?;
    Ok(html(
        StatusCode::OK,
        pages::confirm_delete(
            &chrome(&signed),
            &format!("/ui/teams/{team}/bots/{bot}/secrets/{name}/delete"),
            &format!("/ui/teams/{team}/bots/{bot}/configurations"),
            &format!("the bot secret {name} of bot {bot}"),
            version,
        ),
    ))
}

pub async fn delete_bot_secret(
    State(state): Shared,
    signed: Signed,
    Path((team, bot, name)): Path<(String, String, String)>,
    Form(form): Form<ExpectedForm>,
) -> Page {
    signed
        .caller
        .require(Some(Capability::SecretsWrite), bot_target(&team, &bot))?;
    let actor = signed.caller.id().to_owned();
    let name = SecretName::new(&name).map_err(Problem::from)?;
    let expected = expected_of(&form.expected)?;
    let scope = Scope::Bot(bot.clone());
    let deleted = {
        let (team, name) = (team.clone(), name.clone());
        state
            .blocking(move |s| erase_secret(s, &actor, &scope, Some(&team), &name, expected))
            .await
    };
    match deleted {
        Ok(()) => Ok(see_other(&format!(
            "/ui/teams/{team}/bots/{bot}/configurations?deleted={name}"
        ))),
        Err(p) => {
            let error = save_error(&p, name.as_str());
            let view = configurations_view(&state, &team, &bot, None, Some(error)).await?;
            Ok(html(
                conflict_status(&p),
                pages::configurations(&chrome(&signed), &view),
            ))
        }
    }
}

// ----- deploy, pause -----

/// Each top-level reason of a refusal (indented lines belong to the one
/// above them).
fn reasons_of(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        match out.last_mut() {
            // The missing-secrets reason ends with the commands that set
            // them, on a line of its own.
            Some(last) if line.starts_with(' ') || line.starts_with("set them with") => {
                last.push('\n');
                last.push_str(line);
            }
            _ => out.push(line.to_owned()),
        }
    }
    out
}

async fn deploy_view(
    state: &Arc<AppState>,
    team: &str,
    bot: &str,
    notice: Option<String>,
    error: Option<String>,
) -> Result<pages::DeployPage, UiError> {
    let head = head(state, team, bot).await?;
    let bot = bot.to_owned();
    let (draft, reasons) = state
        .blocking(move |s| {
            let Some(text) = s.engine.store().draft(&bot)? else {
                return Ok((None, None));
            };
            let reasons = match Graph::parse(&text, Some(Format::Json))
                .map_err(EngineError::from)
                .and_then(|g| s.engine.preflight(&bot, &g))
            {
                Ok(_) => Vec::new(),
                Err(EngineError::DeployRefused { reasons, .. }) => reasons_of(&reasons),
                Err(e) => vec![e.to_string()],
            };
            // Stored canonical, shown readable.
            let shown = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(text);
            Ok((Some(shown), Some(reasons)))
        })
        .await?;
    Ok(pages::DeployPage {
        head,
        draft,
        reasons,
        notice,
        error,
    })
}

#[derive(Deserialize)]
pub struct DeployNotice {
    deployed: Option<String>,
    draft: Option<String>,
}

pub async fn deploy_page(
    State(state): Shared,
    signed: Signed,
    Path((team, bot)): Path<(String, String)>,
    Query(q): Query<DeployNotice>,
) -> Page {
    signed
        .caller
        .require(Some(Capability::BotsDeploy), bot_target(&team, &bot))?;
    let notice = match (&q.deployed, &q.draft) {
        (Some(v), _) if v.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            Some(format!("Deployed graph {v}. The next execution runs it."))
        }
        (_, Some(_)) => Some("Draft saved.".to_owned()),
        _ => None,
    };
    let view = deploy_view(&state, &team, &bot, notice, None).await?;
    Ok(html(StatusCode::OK, pages::deploy(&chrome(&signed), &view)))
}

#[derive(Deserialize)]
pub struct DraftForm {
    graph: String,
}

pub async fn save_draft(
    State(state): Shared,
    signed: Signed,
    Path((team, bot)): Path<(String, String)>,
    Form(form): Form<DraftForm>,
) -> Page {
    signed
        .caller
        .require(Some(Capability::BotsDeploy), bot_target(&team, &bot))?;
    let actor = signed.caller.id().to_owned();
    let saved = {
        let (team, bot) = (team.clone(), bot.clone());
        state
            .blocking(move |s| {
                bot_in_team(&s.vault(), &team, &bot)?;
                let graph = Graph::parse(&form.graph, Some(Format::Json))
                    .map_err(|e| Problem::invalid(format!("the draft was not saved: {e}")))?;
                // A draft is stored: it must not hold a credential either.
                let found = s.engine.credential_reasons(&graph)?;
                if !found.is_empty() {
                    return Err(Problem::invalid(format!(
                        "the draft was not saved, and is not shown again: {}",
                        found.join("\n")
                    )));
                }
                s.engine
                    .store()
                    .save_draft(&bot, &graph.canonical_json(), &actor)?;
                Ok(())
            })
            .await
    };
    match saved {
        Ok(()) => Ok(see_other(&format!(
            "/ui/teams/{team}/bots/{bot}/deploy?draft=saved"
        ))),
        Err(p) => {
            let view = deploy_view(&state, &team, &bot, None, Some(p.detail.clone())).await?;
            Ok(html(
                conflict_status(&p),
                pages::deploy(&chrome(&signed), &view),
            ))
        }
    }
}

pub async fn deploy(
    State(state): Shared,
    signed: Signed,
    Path((team, bot)): Path<(String, String)>,
) -> Page {
    signed
        .caller
        .require(Some(Capability::BotsDeploy), bot_target(&team, &bot))?;
    let actor = signed.caller.id().to_owned();
    let deployed = {
        let (team, bot) = (team.clone(), bot.clone());
        state
            .blocking(move |s| {
                let text = s.engine.store().draft(&bot)?.ok_or_else(|| {
                    Problem::invalid("there is no draft to deploy: save a graph first")
                })?;
                deploy_document(s, &actor, &team, &bot, &text)
            })
            .await
    };
    match deployed {
        Ok((deployment, _)) => {
            state.schedules_changed.notify_one();
            Ok(see_other(&format!(
                "/ui/teams/{team}/bots/{bot}/deploy?deployed={}",
                deployment.graph_version
            )))
        }
        Err(p) => {
            let view = deploy_view(
                &state,
                &team,
                &bot,
                None,
                Some(format!("Not deployed: {}", p.detail)),
            )
            .await?;
            Ok(html(
                conflict_status(&p),
                pages::deploy(&chrome(&signed), &view),
            ))
        }
    }
}

async fn set_paused(
    state: Arc<AppState>,
    signed: Signed,
    team: String,
    bot: String,
    paused: bool,
) -> Page {
    signed
        .caller
        .require(Some(Capability::BotsPause), bot_target(&team, &bot))?;
    let actor = signed.caller.id().to_owned();
    {
        let (team, bot) = (team.clone(), bot.clone());
        state
            .blocking(move |s| pause_bot(s, &actor, &team, &bot, paused))
            .await?;
    }
    Ok(see_other(&format!("/ui/teams/{team}/bots/{bot}/deploy")))
}

pub async fn pause(
    State(state): Shared,
    signed: Signed,
    Path((team, bot)): Path<(String, String)>,
) -> Page {
    set_paused(state, signed, team, bot, true).await
}

pub async fn resume(
    State(state): Shared,
    signed: Signed,
    Path((team, bot)): Path<(String, String)>,
) -> Page {
    set_paused(state, signed, team, bot, false).await
}

// ----- executions -----

pub async fn run_now(
    State(state): Shared,
    signed: Signed,
    Path((team, bot)): Path<(String, String)>,
) -> Page {
    signed
        .caller
        .require(Some(Capability::RunsStart), bot_target(&team, &bot))?;
    let actor = signed.caller.id().to_owned();
    let run = {
        let (team, bot) = (team.clone(), bot.clone());
        state
            .blocking(move |s| {
                api::prepare_run(s, &team, &bot, &serde_json::json!({}), None, &actor)
            })
            .await?
    };
    let enqueued = api::enqueue_run(&state, run).await?;
    Ok(see_other(&format!(
        "/ui/teams/{team}/bots/{bot}/executions/{}",
        enqueued.id.as_str()
    )))
}

#[derive(Deserialize)]
pub struct FragmentQuery {
    fragment: Option<String>,
}

pub async fn executions(
    State(state): Shared,
    signed: Signed,
    Path((team, bot)): Path<(String, String)>,
    Query(q): Query<FragmentQuery>,
) -> Page {
    signed
        .caller
        .require(Some(Capability::ExecutionsRead), bot_target(&team, &bot))?;
    let head = head(&state, &team, &bot).await?;
    let rows = {
        let bot = bot.clone();
        state
            .blocking(move |s| Ok(s.engine.store().executions(Some(&bot), 100)?))
            .await?
    }
    .into_iter()
    .map(|e| pages::ExecutionRow {
        id: e.id.as_str().to_owned(),
        status: e.status.to_string(),
        started_at: format_time(e.started_at),
        finished_at: e.finished_at.map(format_time).unwrap_or_else(|| "—".into()),
        summary: shown_line(&e.summary.unwrap_or_default()),
    })
    .collect::<Vec<_>>();
    if q.fragment.as_deref() == Some("table") {
        return Ok(html(
            StatusCode::OK,
            pages::executions_table(&team, &bot, &rows),
        ));
    }
    Ok(html(
        StatusCode::OK,
        pages::executions(&chrome(&signed), &pages::Executions { head, rows }),
    ))
}

pub async fn execution(
    State(state): Shared,
    signed: Signed,
    Path((team, bot, id)): Path<(String, String, String)>,
) -> Page {
    signed
        .caller
        .require(Some(Capability::ExecutionsRead), bot_target(&team, &bot))?;
    let head = head(&state, &team, &bot).await?;
    let (execution, runs) = {
        let (team, bot) = (team.clone(), bot.clone());
        state
            .blocking(move |s| execution_of(s, &team, &bot, &id))
            .await?
    };
    let trigger = serde_json::from_str::<serde_json::Value>(&execution.trigger)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(execution.trigger);
    let trigger = shown(&trigger);
    let nodes = runs
        .into_iter()
        .map(|r| pages::NodeView {
            node: r.node,
            extension: shown_line(&r.extension),
            status: r.status.to_string(),
            duration_ms: r.duration_ms,
            secrets_read: r.secrets_read,
            logs: r
                .logs
                .into_iter()
                .map(|l| format!("{} {}", shown_line(&l.level), shown_line(&l.message)))
                .collect(),
            stdout: shown(&r.stdout),
            stderr: shown(&r.stderr),
            output: r.output.map(|o| {
                shown(
                    &serde_json::from_str::<serde_json::Value>(&o)
                        .ok()
                        .and_then(|v| serde_json::to_string_pretty(&v).ok())
                        .unwrap_or(o),
                )
            }),
            error: r.error.as_deref().map(shown_line),
            egress: r
                .egress
                .into_iter()
                .map(|e| {
                    let (method, host) = (shown_line(&e.method), shown_line(&e.host));
                    let curl = curl(&e);
                    let line = match e.refused {
                        None => format!("{method} {host} (sent)"),
                        Some(why) => format!("{method} {host} (refused: {})", shown_line(&why)),
                    };
                    pages::EgressView { line, curl }
                })
                .collect(),
        })
        .collect();
    let view = pages::ExecutionDetail {
        head,
        id: execution.id.as_str().to_owned(),
        status: execution.status.to_string(),
        started_at: format_time(execution.started_at),
        finished_at: execution
            .finished_at
            .map(format_time)
            .unwrap_or_else(|| "—".into()),
        started_by: execution.started_by.unwrap_or_else(|| "narakim run".into()),
        trigger,
        summary: shown_line(&execution.summary.unwrap_or_default()),
        nodes,
    };
    Ok(html(
        StatusCode::OK,
        pages::execution(&chrome(&signed), &view),
    ))
}

pub async fn triggers(
    State(state): Shared,
    signed: Signed,
    Path((team, bot)): Path<(String, String)>,
    headers: HeaderMap,
) -> Page {
    signed.caller.require(None, bot_target(&team, &bot))?;
    let head = head(&state, &team, &bot).await?;
    let rows = {
        let bot = bot.clone();
        state
            .blocking(move |s| Ok(s.engine.status(&bot, None)?.triggers))
            .await?
    };
    // The URL a sender posts to, as this browser reached the server.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("HOST");
    let scheme = if state.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let base = format!("{scheme}://{host}");
    Ok(html(
        StatusCode::OK,
        pages::triggers(&chrome(&signed), &pages::Triggers { head, rows, base }),
    ))
}

// ----- extensions, audit -----

pub async fn extensions(State(state): Shared, signed: Signed) -> Page {
    signed.caller.require(None, Target::Catalog)?;
    let rows = state
        .blocking(|s| Ok(s.engine.store().extensions()?))
        .await?
        .into_iter()
        .map(|e| pages::ExtensionRow {
            name: e.name,
            version: e.version,
            description: shown_line(&e.description.description),
            reveals_secrets: e.description.reveals_secrets,
            secrets: e
                .description
                .required_secrets
                .into_iter()
                .map(|r| {
                    let places = shown_line(&r.injection.places().join("; "));
                    (r.name, r.hosts, places)
                })
                .collect(),
        })
        .collect::<Vec<_>>();
    Ok(html(
        StatusCode::OK,
        pages::extensions(&chrome(&signed), &rows),
    ))
}

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    team: String,
    #[serde(default)]
    bot: String,
    #[serde(default)]
    actor: String,
}

pub async fn audit(State(state): Shared, signed: Signed, Query(q): Query<AuditQuery>) -> Page {
    signed
        .caller
        .require(Some(Capability::AuditRead), Target::Teams)?;
    let filter = pages::AuditFilter {
        team: q.team.trim().chars().take(64).collect(),
        bot: q.bot.trim().chars().take(64).collect(),
        actor: q.actor.trim().chars().take(64).collect(),
    };
    let rows = {
        let filter = filter.clone();
        state
            .blocking(move |s| {
                let vault = s.vault();
                let team_bots: Vec<String> = if filter.team.is_empty() {
                    Vec::new()
                } else {
                    vault
                        .list_bots()?
                        .into_iter()
                        .filter(|b| b.team == filter.team)
                        .map(|b| b.name)
                        .collect()
                };
                let entries = vault.audit(Some(5000))?;
                Ok(entries
                    .into_iter()
                    .rev()
                    .filter(|e| filter.actor.is_empty() || e.actor == filter.actor)
                    .filter(|e| {
                        filter.bot.is_empty()
                            || (e.scope.as_deref() == Some("bot")
                                && e.owner.as_deref() == Some(filter.bot.as_str()))
                    })
                    .filter(|e| {
                        filter.team.is_empty()
                            || match (e.scope.as_deref(), e.owner.as_deref()) {
                                (Some("team"), Some(o)) => o == filter.team,
                                (Some("bot"), Some(o)) => team_bots.iter().any(|b| b == o),
                                _ => false,
                            }
                    })
                    .take(1000)
                    .map(|e| pages::AuditRow {
                        at: format_time(e.at_ms),
                        actor: e.actor,
                        action: e.action,
                        target: match (&e.scope, &e.owner, &e.name) {
                            (Some(s), Some(o), Some(n)) => format!("{s} {o}: {n}"),
                            (Some(s), Some(o), None) => format!("{s} {o}"),
                            _ => "—".into(),
                        },
                        detail: e.detail,
                    })
                    .collect::<Vec<_>>())
            })
            .await?
    };
    Ok(html(
        StatusCode::OK,
        pages::audit(&chrome(&signed), &filter, &rows),
    ))
}
