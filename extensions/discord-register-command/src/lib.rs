//! `discord-register-command`: creates (or overwrites, by name) a global
//! application command of the bot's application.
//!
//! Config: `{"name": "[-_a-z0-9]{1,32}", "description": "1-100 chars",
//! "options": [...], "type": 1}`; `options` is passed through, `type`
//! defaults to 1 (slash command). Output: `{"id", "name", "created"}`;
//! `created` is `false` when an existing command of that name was updated
//! (Discord answers 200 instead of 201). The application id is left out: it
//! is one of the extension's secrets, and an output that holds a secret's
//! value fails the node.

use discord_common::Discord;
use narakim_extension::http::Method;
use narakim_extension::{Description, Error, Extension, export_extension, info};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Deserialize)]
struct Config {
    /// Log each request and its headers at debug level (values scrubbed by the host).
    #[serde(default)]
    debug: bool,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    options: Option<Value>,
    #[serde(default = "slash", rename = "type")]
    kind: u8,
}

fn slash() -> u8 {
    1
}

#[derive(Serialize)]
struct Output {
    id: String,
    name: String,
    created: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Command {
    id: Option<String>,
    name: Option<String>,
}

fn validate(config: &Config) -> Result<(), Error> {
    let name_len = config.name.chars().count();
    let description = config.description.as_deref().unwrap_or("");
    let description_len = description.chars().count();
    match config.kind {
        1 => {
            let valid = (1..=32).contains(&name_len)
                && config
                    .name
                    .bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'));
            if !valid {
                return Err(Error::new(format!(
                    "config: name {:?} is not a valid slash command name: 1 to 32 of lowercase a-z, 0-9, `-` and `_`",
                    config.name
                )));
            }
            if !(1..=100).contains(&description_len) {
                return Err(Error::new(format!(
                    "config: description must be 1 to 100 characters for a slash command (it is {description_len})"
                )));
            }
        }
        2 | 3 => {
            if !(1..=32).contains(&name_len) {
                return Err(Error::new(format!(
                    "config: name must be 1 to 32 characters (it is {name_len})"
                )));
            }
            if !description.is_empty() {
                return Err(Error::new(
                    "config: user and message commands (type 2 and 3) take no description",
                ));
            }
        }
        other => {
            return Err(Error::new(format!(
                "config: type {other} is not supported: 1 (slash command), 2 (user command) or 3 (message command)"
            )));
        }
    }
    match &config.options {
        None | Some(Value::Null) | Some(Value::Array(_)) => Ok(()),
        Some(_) => Err(Error::new(
            "config: options must be an array of command options",
        )),
    }
}

struct RegisterCommand;

impl Extension for RegisterCommand {
    type Config = Config;
    type Input = Value;
    type Output = Output;

    fn describe() -> Description {
        discord_common::description(
            "discord-register-command",
            env!("CARGO_PKG_VERSION"),
            "Creates or updates a global application command of the bot",
        )
    }

    fn run(config: Config, _input: Value) -> Result<Output, Error> {
        validate(&config)?;
        let mut body = Map::new();
        body.insert("name".into(), Value::String(config.name.clone()));
        body.insert("type".into(), Value::from(config.kind));
        body.insert(
            "description".into(),
            Value::String(config.description.clone().unwrap_or_default()),
        );
        if let Some(options @ Value::Array(_)) = &config.options {
            body.insert("options".into(), options.clone());
        }

        let discord = Discord::from_secrets()?.verbose(config.debug);
        let application_id = discord.application_id();
        info!(
            "registering command {:?} (type {})",
            config.name, config.kind
        );
        let response = discord.send(
            Method::Post,
            &format!("/applications/{application_id}/commands"),
            &Value::Object(body),
        )?;
        let command: Command = response.json()?;
        let id = command.id.ok_or_else(|| {
            Error::new(format!(
                "discord.com answered HTTP {} without the id of the command",
                response.status
            ))
        })?;
        Ok(Output {
            id,
            name: command.name.unwrap_or(config.name),
            created: response.status == 201,
        })
    }
}

export_extension!(RegisterCommand);
