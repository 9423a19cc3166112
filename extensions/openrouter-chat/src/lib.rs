//! `openrouter-chat`: one chat completion through OpenRouter.
//!
//! Config: `{"model": "openai/gpt-4o-mini", "system": "...", "prompt": "text
//! with {{input.PATH}}", "max_completion_tokens": 200, "temperature": 0.7}`;
//! only `model` and `prompt` are required. `max_tokens` is a deprecated
//! alias of `max_completion_tokens` (sent as `max_completion_tokens`).
//! Output: `{"reply", "model", "finish_reason", "usage"}`, `usage` being the
//! API's usage object as it came (tokens, `cost`, details).
//!
//! A reply without text fails the node rather than pass `""` on: a
//! generation that failed after it started (HTTP 200, `finish_reason`
//! `"error"`), a refusal, reasoning only, or tool calls.

use narakim_extension::http::{self, ApiError, Request, StatusErrors};
use narakim_extension::{
    Description, Error, Extension, Injection, credential, export_extension, info, template, warn,
};
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
    max_completion_tokens: Option<u32>,
    /// Deprecated by the API; read as `max_completion_tokens`.
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
    /// Passed through whole: `cost`, `is_byok` and the token details too.
    usage: Option<Value>,
}

/// The parts of a chat completion response we read; everything optional.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Completion {
    model: Option<String>,
    choices: Vec<Choice>,
    usage: Option<Value>,
    error: Option<Value>,
}

/// A chat choice (`message`), or a legacy completion choice (`text`).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Choice {
    message: Option<ChoiceMessage>,
    text: Option<String>,
    finish_reason: Option<String>,
    native_finish_reason: Option<String>,
    error: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChoiceMessage {
    content: Option<Value>,
    refusal: Option<String>,
    reasoning: Option<String>,
    tool_calls: Vec<Value>,
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

/// OpenRouter's error object, `{code, message, metadata}`:
/// `message (code N)`.
fn describe_error(error: &Value) -> String {
    match ApiError::from_object(error) {
        Some(error) => error.to_string(),
        None => match error.as_str() {
            Some(message) => message.chars().take(300).collect(),
            None => "no message".to_owned(),
        },
    }
}

/// How OpenRouter's errors read: a 403 means the key worked and the request
/// was blocked (moderation, a guardrail, or a permission of the key).
fn errors() -> StatusErrors<'static> {
    StatusErrors::new().secret(API_KEY).forbidden(blocked)
}

fn blocked(error: &ApiError) -> String {
    let mut why = "the request was blocked (moderation flagged the input, a guardrail \
                   blocked it, or the key lacks a permission), not a bad key"
        .to_owned();
    let Some(metadata) = &error.metadata else {
        return why;
    };
    let list = |field: &str| {
        metadata[field].as_array().map(|items| {
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    if let Some(reasons) = list("reasons").filter(|r| !r.is_empty()) {
        why.push_str(&format!("; flagged for: {reasons}"));
    }
    if let Some(input) = metadata["flagged_input"].as_str() {
        let input: String = input.chars().take(100).collect();
        why.push_str(&format!("; flagged input: {input:?}"));
    }
    if let Some(patterns) = list("patterns").filter(|p| !p.is_empty()) {
        why.push_str(&format!("; patterns: {patterns}"));
    }
    match (
        metadata["provider_name"].as_str(),
        metadata["model_slug"].as_str(),
    ) {
        (Some(provider), Some(model)) => why.push_str(&format!(" (by {provider} for {model})")),
        (Some(by), None) | (None, Some(by)) => why.push_str(&format!(" (by {by})")),
        (None, None) => {}
    }
    why
}

/// The token limit to send: `max_completion_tokens`, or the deprecated
/// `max_tokens` in its place; never both.
fn max_completion_tokens(config: &Config) -> Result<Option<u32>, Error> {
    let limit = match (config.max_completion_tokens, config.max_tokens) {
        (Some(_), Some(_)) => {
            return Err(Error::new(
                "config: give max_completion_tokens or max_tokens (its deprecated alias), not both",
            ));
        }
        (None, Some(old)) => {
            warn!("config: max_tokens is deprecated; use max_completion_tokens (sent as that)");
            Some(("max_tokens", old))
        }
        (new, None) => new.map(|n| ("max_completion_tokens", n)),
    };
    if let Some((field, 0)) = limit {
        return Err(Error::new(format!("config: {field} must be at least 1")));
    }
    Ok(limit.map(|(_, n)| n))
}

fn validate(config: &Config) -> Result<Option<u32>, Error> {
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
    max_completion_tokens(config)
}

/// The reply text of a choice, or why there is none.
fn reply(choice: Choice) -> Result<String, Error> {
    let finish = choice.finish_reason.as_deref();
    let native = choice
        .native_finish_reason
        .as_deref()
        .filter(|n| Some(*n) != finish)
        .map(|n| format!(", native finish reason {n:?}"))
        .unwrap_or_default();
    let message = choice.message.unwrap_or_default();
    let text = message
        .content
        .as_ref()
        .and_then(content_text)
        .or(choice.text)
        .unwrap_or_default();
    // Errors after generation started come as HTTP 200: any text is cut short.
    if choice.error.is_some() || finish == Some("error") {
        let partial = match text.chars().count() {
            0 => String::new(),
            n => format!(" after {n} characters"),
        };
        return Err(Error::new(match &choice.error {
            Some(error) => format!(
                "{HOST}: the generation failed{partial}: {}{native}",
                describe_error(error)
            ),
            None => format!(
                "{HOST}: the generation failed{partial} (finish_reason \"error\"{native}) \
                 without saying why"
            ),
        }));
    }
    if !text.trim().is_empty() {
        return Ok(text);
    }
    let finish = finish.map_or_else(|| "none".to_owned(), |f| format!("{f:?}"));
    Err(Error::new(
        if let Some(refusal) = message.refusal.filter(|r| !r.trim().is_empty()) {
            format!("{HOST}: the model refused: {refusal}")
        } else if !message.tool_calls.is_empty() {
            let names: Vec<&str> = message
                .tool_calls
                .iter()
                .filter_map(|c| c.pointer("/function/name").and_then(Value::as_str))
                .collect();
            format!(
                "{HOST}: the model answered with {} tool call(s) ({}) and no text \
                 (finish_reason {finish}{native}); this extension runs no tools, so there is \
                 no reply to pass on",
                message.tool_calls.len(),
                names.join(", ")
            )
        } else if message
            .reasoning
            .as_deref()
            .is_some_and(|r| !r.trim().is_empty())
        {
            format!(
                "{HOST}: the model gave only reasoning and no reply text (finish_reason \
                 {finish}{native}); a reasoning model may need a larger max_completion_tokens"
            )
        } else {
            format!("{HOST}: the model's reply has no text (finish_reason {finish}{native})")
        },
    ))
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
        .credential(
            API_KEY,
            &[HOST],
            Injection::header("Authorization", "Bearer {}"),
        )
        .allowed_host(HOST)
    }

    fn run(config: Config, input: Value) -> Result<Output, Error> {
        let max_completion_tokens = validate(&config)?;
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
        if let Some(limit) = max_completion_tokens {
            body.insert("max_completion_tokens".into(), Value::from(limit));
        }
        if let Some(temperature) = config.temperature {
            body.insert("temperature".into(), Value::from(temperature));
        }
        let body = Value::Object(body);

        let key = credential(API_KEY)?;
        info!(
            "asking {} ({} prompt characters)",
            config.model,
            prompt.chars().count()
        );
        let response = http::send_with_retry(
            || {
                Request::post(URL)
                    .credential("Authorization", "Bearer {}", &key)
                    .header("X-Title", "narakim")
                    .json(&body)
                    .verbose(config.debug)
            },
            http::DEFAULT_MAX_WAIT,
        )?;
        let errors = errors();
        response.check(&errors)?;

        let completion: Completion = response.json()?;
        if let Some(error) = &completion.error {
            // An error in a 200 body reads like the status it names.
            let api = ApiError::from_object(error);
            let code = api.as_ref().and_then(ApiError::code_number);
            if let Some(status) = code.and_then(|c| u16::try_from(c).ok())
                && (400..=599).contains(&status)
            {
                errors.check(HOST, status, api.as_ref(), None)?;
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
        let finish_reason = choice.finish_reason.clone();
        let reply = reply(choice)?;
        Ok(Output {
            reply,
            model: completion
                .model
                .filter(|m| !m.is_empty())
                .unwrap_or(config.model),
            finish_reason,
            usage: completion.usage,
        })
    }
}

export_extension!(OpenRouterChat);
