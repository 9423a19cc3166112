//! What the Discord sample extensions share: the API base URL, the headers
//! Discord asks for, the two secrets and how their failures read.

use narakim_extension::http::{self, Method, Request, Response};
use narakim_extension::{Description, Error, Secret, secret};
use serde_json::Value;

/// Discord's REST API, version 10.
pub const API_BASE: &str = "https://discord.com/api/v10";
/// The only host the Discord extensions talk to.
pub const HOST: &str = "discord.com";
/// Discord requires this form: `DiscordBot ($url, $versionNumber)`.
pub const USER_AGENT: &str = "DiscordBot (https://github.com/narakim/narakim, 0.1.0)";
/// The bot token (`Authorization: Bot …`).
pub const BOT_TOKEN: &str = "DISCORD_BOT_TOKEN";
/// The application (client) id, a snowflake.
pub const APPLICATION_ID: &str = "DISCORD_APPLICATION_ID";

/// A description with both Discord secrets (bound to discord.com) and
/// discord.com allowed.
pub fn description(name: &str, version: &str, summary: &str) -> Description {
    Description::new(name, version, summary)
        .required_secret(BOT_TOKEN, &[HOST])
        .required_secret(APPLICATION_ID, &[HOST])
        .allowed_host(HOST)
}

/// `true` for a Discord snowflake as a string: 17 to 20 digits.
pub fn is_snowflake(s: &str) -> bool {
    (17..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// A client holding the bot token and the application id.
pub struct Discord {
    token: Secret,
    application_id: Secret,
    verbose: bool,
}

impl Discord {
    /// Reads both secrets; the application id must be a snowflake.
    pub fn from_secrets() -> Result<Self, Error> {
        let token = secret(BOT_TOKEN)?;
        let application_id = secret(APPLICATION_ID)?;
        if !is_snowflake(application_id.expose().trim()) {
            return Err(Error::new(format!(
                "secret {APPLICATION_ID} is not a Discord application id (17 to 20 digits, from the \
                 Developer Portal's General Information page); set it with \
                 `narakim secret set {APPLICATION_ID} --bot BOT`"
            )));
        }
        if token.expose().trim().is_empty() || token.expose().contains(['\r', '\n']) {
            return Err(Error::new(format!(
                "secret {BOT_TOKEN} is not a bot token (empty or several lines); set it with \
                 `narakim secret set {BOT_TOKEN} --bot BOT`"
            )));
        }
        Ok(Self {
            token,
            application_id,
            verbose: false,
        })
    }

    /// Logs each request and its headers at `debug` level (see
    /// [`Request::verbose`]); the host scrubs the token out of the log.
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// The application id (not secret in Discord's eyes, but kept as one).
    pub fn application_id(&self) -> &str {
        self.application_id.expose().trim()
    }

    fn request(&self, method: Method, path: &str, body: &Value) -> Request {
        Request::new(method, format!("{API_BASE}{path}"))
            .auth("Authorization", "Bot", &self.token)
            .header("User-Agent", USER_AGENT)
            .json(body)
            .verbose(self.verbose)
    }

    /// Sends `body` as JSON to `API_BASE` + `path`, waiting out one rate
    /// limit of at most 10 s, and turns an error status into a clear error
    /// (401/403 name `DISCORD_BOT_TOKEN`).
    pub fn send(&self, method: Method, path: &str, body: &Value) -> Result<Response, Error> {
        let response =
            http::send_with_retry(|| self.request(method, path, body), http::DEFAULT_MAX_WAIT)?;
        response.error_for_status(Some(BOT_TOKEN))?;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snowflakes() {
        assert!(is_snowflake("123456789012345678"));
        assert!(!is_snowflake("1234"));
        assert!(!is_snowflake("12345678901234567a"));
        assert!(!is_snowflake("123456789012345678901"));
    }
}
