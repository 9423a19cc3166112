//! What the Discord sample extensions share: the API base URL, the headers
//! Discord asks for, the two secrets and how their failures read.
//!
//! Both secrets are credentials: the extensions hold placeholders, and the
//! host puts the token into `Authorization: Bot …` and the application id
//! into the path, outside the sandbox.

use narakim_extension::http::{self, ApiError, Method, Request, Response, StatusErrors};
use narakim_extension::{Credential, Description, Error, Injection, credential, template};
use serde_json::{Map, Value, json};

/// Discord's REST API, version 10.
pub const API_BASE: &str = "https://discord.com/api/v10";
/// The only host the Discord extensions talk to.
pub const HOST: &str = "discord.com";
/// Discord requires this form: `DiscordBot ($url, $versionNumber)`.
pub const USER_AGENT: &str = "DiscordBot (https://github.com/narakim/narakim, 0.2.0)";
/// The bot token (`Authorization: Bot …`).
pub const BOT_TOKEN: &str = "DISCORD_BOT_TOKEN";
/// The application (client) id, a snowflake.
pub const APPLICATION_ID: &str = "DISCORD_APPLICATION_ID";

/// A description with both Discord secrets (bound to discord.com) and
/// discord.com allowed: the token in `Authorization: Bot {}`, the
/// application id in the path.
pub fn description(name: &str, version: &str, summary: &str) -> Description {
    Description::new(name, version, summary)
        .credential(
            BOT_TOKEN,
            &[HOST],
            Injection::header("Authorization", "Bot {}"),
        )
        .credential(APPLICATION_ID, &[HOST], Injection::default().in_path())
        .allowed_host(HOST)
}

/// Discord's limit on a message's `content`, in characters.
pub const MAX_CONTENT: usize = 2000;

/// A message to send, built from a node's config.
pub struct MessageBody {
    /// The JSON body: `content` (when not empty), `embeds` (when given)
    /// and `allowed_mentions` (default `{"parse": []}`: mention nobody).
    pub body: Value,
    /// The rendered content.
    pub content: String,
}

/// Renders `content` against the node's `input` and checks the message as
/// Discord would: something to send (text or embeds), `embeds` an array,
/// at most [`MAX_CONTENT`] characters of content.
pub fn message_body(
    content: Option<&str>,
    embeds: Option<&Value>,
    allowed_mentions: Option<&Value>,
    input: &Value,
) -> Result<MessageBody, Error> {
    let content = match content {
        Some(text) => template::render(text, input).map_err(|e| e.context("config: content"))?,
        None => String::new(),
    };
    let has_embeds = match embeds {
        None | Some(Value::Null) => false,
        Some(Value::Array(embeds)) => !embeds.is_empty(),
        Some(_) => {
            return Err(Error::new(
                "config: embeds must be an array of embed objects",
            ));
        }
    };
    if !has_embeds && content.trim().is_empty() {
        return Err(Error::new(
            "config: content is empty (after rendering); give some text, or embeds",
        ));
    }
    let length = content.chars().count();
    if length > MAX_CONTENT {
        return Err(Error::new(format!(
            "config: content is {length} characters after rendering, over Discord's limit of {MAX_CONTENT}"
        )));
    }
    let mut body = Map::new();
    if !content.is_empty() {
        body.insert("content".into(), Value::String(content.clone()));
    }
    if has_embeds {
        body.insert("embeds".into(), embeds.cloned().unwrap_or_default());
    }
    body.insert(
        "allowed_mentions".into(),
        allowed_mentions
            .cloned()
            .unwrap_or_else(|| json!({"parse": []})),
    );
    Ok(MessageBody {
        body: Value::Object(body),
        content,
    })
}

/// `true` for a Discord snowflake as a string: 17 to 20 digits.
pub fn is_snowflake(s: &str) -> bool {
    (17..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// The credential of [`APPLICATION_ID`]. Its value never enters the
/// extension, so it is not checked here: a wrong id is Discord's 404 or
/// 403, which [`errors`] explains.
pub fn application_id() -> Result<Credential, Error> {
    credential(APPLICATION_ID)
}

/// A client holding the credentials of the bot token and the application id.
pub struct Discord {
    token: Credential,
    application_id: Credential,
    verbose: bool,
}

impl Discord {
    /// The credentials of both secrets.
    pub fn from_secrets() -> Result<Self, Error> {
        Ok(Self {
            token: credential(BOT_TOKEN)?,
            application_id: application_id()?,
            verbose: false,
        })
    }

    /// Logs each request and its headers at `debug` level (see
    /// [`Request::verbose`]); they hold placeholders, never the token.
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// The application id's placeholder, for a path: the host puts the id
    /// in its place.
    pub fn application_id(&self) -> String {
        self.application_id.placeholder()
    }

    fn request(&self, method: Method, path: &str, body: &Value) -> Request {
        Request::new(method, format!("{API_BASE}{path}"))
            .credential("Authorization", "Bot {}", &self.token)
            .header("User-Agent", USER_AGENT)
            .json(body)
            .verbose(self.verbose)
    }

    /// Sends `body` as JSON to `API_BASE` + `path`, waiting out one rate
    /// limit of at most 10 s, and turns an error status into a clear error
    /// ([`errors`]: 401 names `DISCORD_BOT_TOKEN`, 403 is a permission).
    pub fn send(&self, method: Method, path: &str, body: &Value) -> Result<Response, Error> {
        let response =
            http::send_with_retry(|| self.request(method, path, body), http::DEFAULT_MAX_WAIT)?;
        response.check(&errors(path))?;
        Ok(response)
    }
}

/// How Discord's errors read. A bad token is a 401; a 403 means the token
/// worked and the bot may not do this, so it names the missing permission
/// (from Discord's JSON error code) rather than the token.
pub fn errors(path: &str) -> StatusErrors<'static> {
    let commands = path.starts_with("/applications/");
    StatusErrors::new()
        .secret(BOT_TOKEN)
        .forbidden(move |error| forbidden(error, commands))
}

/// What a 403 means, by Discord's error code.
fn forbidden(error: &ApiError, commands: bool) -> String {
    match error.code_number() {
        Some(50013) => "the bot lacks a permission this needs in that channel (for a message: \
             View Channel and Send Messages, plus Embed Links for embeds); grant it to the \
             bot's role or in the channel's permission settings"
            .into(),
        Some(50001) if commands => format!(
            "the bot has no access to that application; check that secret {APPLICATION_ID} is \
             the id of this bot's own application"
        ),
        Some(50001) => "the bot has no access there (it is not in that server, or cannot \
             view that channel); add it to the server or give its role View Channel"
            .into(),
        _ => "the bot is not allowed to do this (a permission problem, not a bad token)".into(),
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

    #[test]
    fn a_403_names_the_permission_not_the_token() {
        let missing = |code: u64| {
            let body = serde_json::json!({"message": "Missing Permissions", "code": code});
            let error = ApiError::from_json(&body).unwrap();
            errors("/channels/1/messages")
                .check(HOST, 403, Some(&error), None)
                .unwrap_err()
                .to_string()
        };
        let error = missing(50013);
        assert!(error.contains("lacks a permission"), "{error}");
        assert!(
            error.ends_with("Missing Permissions (code 50013)"),
            "{error}"
        );
        assert!(!error.contains("check secret"), "{error}");
        assert!(missing(50001).contains("no access there"));
        assert!(missing(40001).contains("not a bad token"));
        let commands = errors("/applications/1/commands")
            .check(
                HOST,
                403,
                ApiError::from_json(
                    &serde_json::json!({"message": "Missing Access", "code": 50001}),
                )
                .as_ref(),
                None,
            )
            .unwrap_err()
            .to_string();
        assert!(commands.contains(APPLICATION_ID), "{commands}");
        let unauthorized = errors("/channels/1/messages")
            .check(HOST, 401, None, None)
            .unwrap_err()
            .to_string();
        assert!(
            unauthorized.contains("check secret DISCORD_BOT_TOKEN"),
            "{unauthorized}"
        );
    }
}
