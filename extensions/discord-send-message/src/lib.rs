//! `discord-send-message`: posts a message to a Discord channel as the bot.
//!
//! Config: `{"channel_id": "SNOWFLAKE", "content": "text with {{input.PATH}}",
//! "embeds": [...], "allowed_mentions": {...}}`; `embeds` and
//! `allowed_mentions` are passed through (`allowed_mentions` defaults to
//! `{"parse": []}`, so the bot never pings anyone by accident).
//! Output: `{"id", "channel_id", "content"}` of the message created.

use discord_common::{Discord, MessageBody, is_snowflake, message_body};
use narakim_extension::http::Method;
use narakim_extension::{Description, Error, Extension, export_extension, info};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize)]
struct Config {
    /// Log each request and its headers at debug level (values scrubbed by the host).
    #[serde(default)]
    debug: bool,
    channel_id: String,
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
    channel_id: String,
    content: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Message {
    id: Option<String>,
    channel_id: Option<String>,
    content: Option<String>,
}

struct SendMessage;

impl Extension for SendMessage {
    type Config = Config;
    type Input = Value;
    type Output = Output;

    fn describe() -> Description {
        discord_common::description(
            "discord-send-message",
            env!("CARGO_PKG_VERSION"),
            "Sends a message to a Discord channel as the bot",
        )
    }

    fn run(config: Config, input: Value) -> Result<Output, Error> {
        if !is_snowflake(&config.channel_id) {
            return Err(Error::new(format!(
                "config: channel_id {:?} is not a Discord channel id (17 to 20 digits, as a string)",
                config.channel_id
            )));
        }
        let MessageBody { body, content } = message_body(
            config.content.as_deref(),
            config.embeds.as_ref(),
            config.allowed_mentions.as_ref(),
            &input,
        )?;
        let length = content.chars().count();

        let discord = Discord::from_secrets()?.verbose(config.debug);
        info!(
            "sending a message of {length} characters to channel {}",
            config.channel_id
        );
        let response = discord.send(
            Method::Post,
            &format!("/channels/{}/messages", config.channel_id),
            &body,
        )?;
        let message: Message = response.json()?;
        let id = message.id.ok_or_else(|| {
            Error::new(format!(
                "discord.com answered HTTP {} without the id of the message created",
                response.status
            ))
        })?;
        Ok(Output {
            id,
            channel_id: message.channel_id.unwrap_or(config.channel_id),
            content: message.content.unwrap_or(content),
        })
    }
}

export_extension!(SendMessage);
