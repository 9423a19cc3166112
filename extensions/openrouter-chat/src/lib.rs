//! `openrouter-chat`: one chat completion through OpenRouter.
//!
//! Config: `{"model": "openai/gpt-4o-mini", "system": "...", "prompt": "text
//! with {{input.PATH}}", "max_tokens": 200, "temperature": 0.7}`; only
//! `model` and `prompt` are required. Output: `{"reply", "model",
//! "finish_reason", "usage"}`.

use narakim_extension::http::{self, Request};
use narakim_extension::{Description, Error, Extension, export_extension, info, secret, template};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

const HOST: &str = "openrouter.ai";
const URL: &str = "https://openrouter.ai/api/v1/chat/completions";
const API_KEY: &str = "OPENROUTER_API_KEY";

#[derive(Deserialize)]
struct Config {
    model: String,
    #[serde(default)]
    system: Option<String>,
    prompt: String,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f64>,
    /// Log each request and its headers at debug level (values scrubbed by the host).
    #[serde(default)]
    debug: bool,
}

#[derive(Serialize)]
struct Output {
    reply: String,
    model: String,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

/// The parts of a chat completion response we read; everything optional.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Completion {
    model: Option<String>,
    choices: Vec<Choice>,
    usage: Option<Usage>,
    error: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Choice {
    message: Option<ChoiceMessage>,
    finish_reason: Option<String>,
    error: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChoiceMessage {
    content: Option<Value>,
    refusal: Option<String>,
}

/// `content` is a string, or (some providers) a list of `{type, text}` parts.
fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let text: String = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            Some(text)
        }
        _ => None,
    }
}

/// OpenRouter's error object: `{code, message, metadata}`.
fn describe_error(error: &Value) -> String {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| error.as_str())
        .unwrap_or("no message");
    let message: String = message.chars().take(300).collect();
    match error.get("code").filter(|c| !c.is_null()) {
        Some(code) => format!("{message} (code {code})"),
        None => message,
    }
}

fn validate(config: &Config) -> Result<(), Error> {
    if config.model.trim().is_empty() {
        return Err(Error::new(
            "config: model is empty; name one, for example \"openai/gpt-4o-mini\"",
        ));
    }
    if let Some(t) = config.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(Error::new(format!(
            "config: temperature {t} is outside 0 to 2"
        )));
    }
    if config.max_tokens == Some(0) {
        return Err(Error::new("config: max_tokens must be at least 1"));
    }
    Ok(())
}

struct OpenRouterChat;

impl Extension for OpenRouterChat {
    type Config = Config;
    type Input = Value;
    type Output = Output;

    fn describe() -> Description {
        Description::new(
            "openrouter-chat",
            env!("CARGO_PKG_VERSION"),
            "Asks a model on OpenRouter for one chat completion",
        )
        .required_secret(API_KEY, &[HOST])
        .allowed_host(HOST)
    }

    fn run(config: Config, input: Value) -> Result<Output, Error> {
        validate(&config)?;
        let prompt =
            template::render(&config.prompt, &input).map_err(|e| e.context("config: prompt"))?;
        if prompt.trim().is_empty() {
            return Err(Error::new("config: prompt is empty (after rendering)"));
        }
        let system = config
            .system
            .as_deref()
            .map(|s| template::render(s, &input).map_err(|e| e.context("config: system")))
            .transpose()?;

        let mut messages = Vec::new();
        if let Some(system) = system.filter(|s| !s.trim().is_empty()) {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": prompt}));
        let mut body = Map::new();
        body.insert("model".into(), Value::String(config.model.clone()));
        body.insert("messages".into(), Value::Array(messages));
        if let Some(max_tokens) = config.max_tokens {
            body.insert("max_tokens".into(), Value::from(max_tokens));
        }
        if let Some(temperature) = config.temperature {
            body.insert("temperature".into(), Value::from(temperature));
        }
        let body = Value::Object(body);

        let key = secret(API_KEY)?;
        info!(
            "asking {} ({} prompt characters)",
            config.model,
            prompt.chars().count()
        );
        let response = http::send_with_retry(
            || {
                Request::post(URL)
                    .bearer(&key)
                    .header("X-Title", "narakim")
                    .json(&body)
                    .verbose(config.debug)
            },
            http::DEFAULT_MAX_WAIT,
        )?;
        response.error_for_status(Some(API_KEY))?;

        let completion: Completion = response.json()?;
        if let Some(error) = &completion.error {
            let code = error.get("code").and_then(Value::as_u64);
            if matches!(code, Some(401 | 403)) {
                return Err(Error::new(format!(
                    "{HOST} rejected the credentials ({}): check secret {API_KEY} (`narakim secret set {API_KEY} --bot BOT`)",
                    describe_error(error)
                )));
            }
            return Err(Error::new(format!(
                "{HOST} returned an error: {}",
                describe_error(error)
            )));
        }
        let Some(choice) = completion.choices.into_iter().next() else {
            return Err(Error::new(format!(
                "{HOST} answered HTTP {} with no choices",
                response.status
            )));
        };
        let message = choice.message.unwrap_or_default();
        let Some(reply) = message.content.as_ref().and_then(content_text) else {
            return Err(Error::new(match (&choice.error, &message.refusal) {
                (Some(error), _) => format!("{HOST}: the model failed: {}", describe_error(error)),
                (None, Some(refusal)) => format!("{HOST}: the model refused: {refusal}"),
                (None, None) => {
                    format!("{HOST} answered with a choice that has no message content")
                }
            }));
        };
        Ok(Output {
            reply,
            model: completion
                .model
                .filter(|m| !m.is_empty())
                .unwrap_or(config.model),
            finish_reason: choice.finish_reason,
            usage: completion.usage,
        })
    }
}

export_extension!(OpenRouterChat);
