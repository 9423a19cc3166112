//! Who is calling, and what they may touch.
//!
//! Every `/api/v1` route takes a [`Caller`]: the `Authorization: Bearer`
//! token, checked by the vault (format and checksum offline, then a keyed
//! digest compared in constant time, then expiry). Routes then state the
//! capability and the scope they act on with [`Caller::require`]; the scope
//! check comes before any lookup, so a token learns nothing about teams
//! and bots outside its scope, not even whether they exist.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use zeroize::Zeroizing;

use super::AppState;
use super::problem::Problem;
use crate::vault::access::{Capability, TokenInfo, TokenScope};

/// The authenticated token of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub TokenInfo);

/// What a route acts on.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Teams themselves (create, delete): admin tokens only.
    Teams,
    /// Extensions, shared by every team: admin or team tokens.
    Catalog,
    /// A team's own resources (its secrets, its list of bots): the team's
    /// tokens, never a bot's.
    Team(&'a str),
    /// One bot and what is its: the bot's team's tokens and its own.
    Bot { team: &'a str, bot: &'a str },
}

impl Caller {
    /// The token's id: the actor of everything it changes.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// Fails with 403 unless the token holds `capability` (when given) and
    /// its scope covers `target`.
    pub fn require(
        &self,
        capability: Option<Capability>,
        target: Target<'_>,
    ) -> Result<(), Problem> {
        let token = &self.0;
        let in_scope = match (&token.scope, target) {
            (TokenScope::Admin, _) => true,
            (_, Target::Teams) => false,
            (TokenScope::Team(_), Target::Catalog) => true,
            (TokenScope::Bot { .. }, Target::Catalog) => false,
            (TokenScope::Team(mine), Target::Team(team)) => mine == team,
            (TokenScope::Team(mine), Target::Bot { team, .. }) => mine == team,
            (TokenScope::Bot { .. }, Target::Team(_)) => false,
            (TokenScope::Bot { team: t, bot: b }, Target::Bot { team, bot }) => {
                t == team && b == bot
            }
        };
        if !in_scope {
            return Err(Problem::forbidden(format!(
                "token {} is scoped to {}, which does not cover {}",
                token.id,
                token.scope,
                describe(target)
            )));
        }
        if let Some(capability) = capability
            && !token.can(capability)
        {
            return Err(Problem::forbidden(format!(
                "token {} lacks the capability {capability}; create a token with `--can {capability}`",
                token.id
            ))
            .with("missing_capability", capability.as_str()));
        }
        Ok(())
    }
}

fn describe(target: Target<'_>) -> String {
    match target {
        Target::Teams => "managing teams (admin tokens only)".to_owned(),
        Target::Catalog => "the extension catalog".to_owned(),
        Target::Team(team) => format!("team {team}"),
        Target::Bot { team, bot } => format!("bot {bot} of team {team}"),
    }
}

/// The `Authorization: Bearer` token of a request, parsed but not yet
/// checked. A route that does its work on the blocking pool anyway takes
/// this and checks it there ([`authenticate`](Self::authenticate)), saving
/// a crossing; every other route takes a [`Caller`].
pub struct Bearer(Zeroizing<String>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer([REDACTED])")
    }
}

impl Bearer {
    /// Checks the token against the vault (blocking: call it on the
    /// blocking pool) and spends one request of its rate limit.
    pub fn authenticate(&self, state: &AppState) -> Result<Caller, Problem> {
        let info = state.vault().authenticate(&self.0)?;
        state.limiter.admit(&info.id)?;
        Ok(Caller(info))
    }
}

impl Caller {
    /// The caller behind web UI session `id` ([`super::ui::session`]):
    /// its token, checked again now (blocking, as
    /// [`Bearer::authenticate`] is), spending one request of its rate
    /// limit.
    pub fn of_session(state: &AppState, id: &str) -> Result<Caller, Problem> {
        let info = state.vault().session(id)?;
        state.limiter.admit(&info.id)?;
        Ok(Caller(info))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            Problem::unauthorized(
                "this route needs an API token: send `Authorization: Bearer nrk_…` (create one with `narakim token create`)",
            )
        })?;
        let text = header.to_str().map_err(|_| {
            Problem::unauthorized(
                "the Authorization header holds non-ASCII bytes; send `Bearer nrk_…`",
            )
        })?;
        let presented = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .ok_or_else(|| {
                Problem::unauthorized("the Authorization header must read `Bearer nrk_…`")
            })?;
        Ok(Bearer(Zeroizing::new(presented.trim().to_owned())))
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Problem> {
        let bearer = Bearer::from_request_parts(parts, state).await?;
        state
            .blocking(move |state| bearer.authenticate(state))
            .await
    }
}

/// Per-token request budget: a token bucket of `burst` requests refilled
/// at `per_second`. Past it a request answers 429 with `Retry-After`.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> RateLimiter {
        let per_second = f64::from(per_second.max(1));
        RateLimiter {
            per_second,
            burst: per_second * 2.0,
            buckets: Mutex::default(),
        }
    }

    pub fn admit(&self, token: &str) -> Result<(), Problem> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a bucket refilled to full carries no information.
        if buckets.len() > 10_000 {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (level, at)| {
                *level + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (level, at) = buckets.entry(token.to_owned()).or_insert((self.burst, now));
        *level = (*level + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *level >= 1.0 {
            *level -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - *level) / self.per_second).ceil().max(1.0) as u64;
        Err(Problem::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!(
                "token {token} is over its rate limit of {} requests per second; retry after {wait} s",
                self.per_second
            ),
        )
        .retry_after(wait))
    }
}
