//! `discord-send-message`: posts a message to a Discord channel as the bot.
//!
//! Config: `{"channel_id": "SNOWFLAKE", "content": "text with {{input.PATH}}",
//! "embeds": [...], "allowed_mentions": {...}}`; `embeds` and
//! `allowed_mentions` are passed through (`allowed_mentions` defaults to
//! `{"parse": []}`, so the bot never pings anyone by accident).
//! Output: `{"id", "channel_id", "content"}` of the message created.

use discord_common::{Discord, is_snowflake};
use narakim_extension::http::Method;
use narakim_extension::{Description, Error, Extension, export_extension, info, template};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Discord's limit on `content`, in characters.
const MAX_CONTENT: usize = 2000;

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
        let content = match &config.content {
            Some(text) => {
                template::render(text, &input).map_err(|e| e.context("config: content"))?
            }
            None => String::new(),
        };
        let has_embeds = match &config.embeds {
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
            body.insert("embeds".into(), config.embeds.clone().unwrap_or_default());
        }
        body.insert(
            "allowed_mentions".into(),
            config
                .allowed_mentions
                .clone()
                .unwrap_or_else(|| json!({"parse": []})),
        );

        let discord = Discord::from_secrets()?.verbose(config.debug);
        info!(
            "sending a message of {length} characters to channel {}",
            config.channel_id
        );
        let response = discord.send(
            Method::Post,
            &format!("/channels/{}/messages", config.channel_id),
            &Value::Object(body),
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
