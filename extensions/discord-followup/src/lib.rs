//! `discord-followup`: answers a Discord slash command that narakim
//! acknowledged with a deferred response, by editing that response.
//!
//! It sends `PATCH /webhooks/{application_id}/{interaction_token}/messages/@original`
//! (Discord's "Edit Original Interaction Response"). The interaction token
//! is the secret `DISCORD_INTERACTION_TOKEN`, which a `discord-interactions`
//! trigger hands each run it starts and which is never stored; the
//! application id comes from the verified interaction
//! (`{{trigger.application_id}}` in the run's input). The request carries no
//! bot token: the interaction token is the credential.
//!
//! Config: `{"content": "text with {{input.PATH}}", "embeds": [...],
//! "allowed_mentions": {...}}` (`allowed_mentions` defaults to
//! `{"parse": []}`). Output: `{"id", "content"}` of the edited message.

use discord_common::{API_BASE, HOST, MessageBody, USER_AGENT, is_snowflake, message_body};
use narakim_extension::http::{self, Method, Request, StatusErrors};
use narakim_extension::{Description, Error, Extension, export_extension, info, secret};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The per-run secret a `discord-interactions` trigger provides.
const INTERACTION_TOKEN: &str = "DISCORD_INTERACTION_TOKEN";

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    embeds: Option<Value>,
    #[serde(default)]
    allowed_mentions: Option<Value>,
}

#[derive(Serialize)]
struct Output {
    id: String,
    content: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Message {
    id: Option<String>,
    content: Option<String>,
}

struct FollowUp;

impl Extension for FollowUp {
    type Config = Config;
    type Input = Value;
    type Output = Output;

    fn describe() -> Description {
        Description::new(
            "discord-followup",
            env!("CARGO_PKG_VERSION"),
            "Answers a deferred Discord slash command by editing its original response",
        )
        .required_secret(INTERACTION_TOKEN, &[HOST])
        .allowed_host(HOST)
    }

    fn run(config: Config, input: Value) -> Result<Output, Error> {
        let application_id = input
            .pointer("/trigger/application_id")
            .and_then(Value::as_str)
            .filter(|id| is_snowflake(id))
            .ok_or_else(|| {
                Error::new(
                    "the run's trigger has no Discord application_id: discord-followup answers \
                     runs started by a discord-interactions trigger",
                )
            })?
            .to_owned();
        let MessageBody { body, content } = message_body(
            config.content.as_deref(),
            config.embeds.as_ref(),
            config.allowed_mentions.as_ref(),
            &input,
        )?;
        let length = content.chars().count();

        let token = secret(INTERACTION_TOKEN)?;
        if token.expose().is_empty()
            || !token
                .expose()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(Error::new(format!(
                "secret {INTERACTION_TOKEN} is not an interaction token; it comes from the \
                 discord-interactions trigger that started this run"
            )));
        }
        info!("answering interaction of application {application_id} with {length} characters");
        let response = http::send_with_retry(
            || {
                Request::new(
                    Method::Patch,
                    format!(
                        "{API_BASE}/webhooks/{application_id}/{}/messages/@original",
                        token.expose()
                    ),
                )
                .header("User-Agent", USER_AGENT)
                .json(&body)
            },
            http::DEFAULT_MAX_WAIT,
        )?;
        if response.status == 404 {
            return Err(Error::new(
                "discord.com knows no such interaction (HTTP 404): its token expired (tokens \
                 last 15 minutes) or belongs to another application",
            ));
        }
        response.check(&StatusErrors::new().secret(INTERACTION_TOKEN))?;
        let message: Message = response.json()?;
        let id = message.id.ok_or_else(|| {
            Error::new(format!(
                "discord.com answered HTTP {} without the id of the message edited",
                response.status
            ))
        })?;
        Ok(Output {
            id,
            content: message.content.unwrap_or(content),
        })
    }
}

export_extension!(FollowUp);
