//! `discord-followup`: answers a Discord slash command that narakim
//! acknowledged with a deferred response, by editing that response.
//!
//! It sends `PATCH /webhooks/{application_id}/{interaction_token}/messages/@original`
//! (Discord's "Edit Original Interaction Response"). The interaction token
//! is the secret `DISCORD_INTERACTION_TOKEN`, which a `discord-interactions`
//! trigger hands each run it starts and which is never stored. The
//! application id is the secret `DISCORD_APPLICATION_ID`, as for the other
//! Discord samples: a team that stores it as a secret has it scrubbed from
//! every record, the run's trigger input included, so the interaction's own
//! `application_id` field cannot be relied on. The request carries no bot
//! token: the interaction token is the credential.
//!
//! Config: `{"content": "text with {{input.PATH}}", "embeds": [...],
//! "allowed_mentions": {...}, "debug": false}` (`allowed_mentions` defaults
//! to `{"parse": []}`; `debug` logs the request as sent). Output: `{"id", "content"}` of the edited message.

use discord_common::{API_BASE, APPLICATION_ID, HOST, MessageBody, USER_AGENT, message_body};
use narakim_extension::http::{self, Method, Request, StatusErrors};
use narakim_extension::{
    Description, Error, Extension, Injection, credential, export_extension, info,
};
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
    /// Log the request as sent, headers and URL included (they hold
    /// placeholders, never the token or the application id).
    #[serde(default)]
    debug: bool,
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
        .credential(APPLICATION_ID, &[HOST], Injection::default().in_path())
        .credential(INTERACTION_TOKEN, &[HOST], Injection::default().in_path())
        .allowed_host(HOST)
    }

    fn run(config: Config, input: Value) -> Result<Output, Error> {
        if input.pointer("/trigger/interaction").is_none() {
            return Err(Error::new(
                "the run was not started by a Discord interaction: discord-followup answers runs \
                 started by a discord-interactions trigger",
            ));
        }
        let application_id = discord_common::application_id()?;
        let MessageBody { body, content } = message_body(
            config.content.as_deref(),
            config.embeds.as_ref(),
            config.allowed_mentions.as_ref(),
            &input,
        )?;
        let length = content.chars().count();

        // Placeholders: the host puts both values into the path (each
        // percent-encoded as a segment), so neither enters the extension.
        let token = credential(INTERACTION_TOKEN)?;
        info!("answering the interaction with {length} characters");
        let response = http::send_with_retry(
            || {
                Request::new(
                    Method::Patch,
                    format!(
                        "{API_BASE}/webhooks/{}/{}/messages/@original",
                        application_id.placeholder(),
                        token.placeholder()
                    ),
                )
                .header("User-Agent", USER_AGENT)
                .verbose(config.debug)
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
