//! The OpenRouter stand-in: chat completions, prefix `/api/v1`.
//!
//! | route | schema of the body | answer |
//! |---|---|---|
//! | `POST /api/v1/chat/completions` | `ChatRequest` | 200, a `ChatResult` without `system_fingerprint` |
//!
//! Every request must carry `Authorization: Bearer <api_key>`: without one
//! the answer is 401 `{"error":{"code":401,"message":"No auth credentials
//! found"}}`, with another key 401 `... "Invalid API key"`. Bodies must be
//! `application/json` (else 415) and valid JSON (else 400). A body the
//! [`Validator`] rejects, or without a non-empty `model`
//! string and a non-empty `messages` array of objects with a known `role`,
//! gets 400 `{"error":{"code":400,"message":...}}`. Unknown routes get 404
//! in the same shape.
//!
//! The reply is deterministic: `Hello from the OpenRouter stand-in. You
//! said: ` and the first 200 characters of the last user message, short
//! enough to post to Discord as is; cut to about four characters a token
//! when `max_completion_tokens` (or the deprecated `max_tokens`) is lower,
//! with `finish_reason` `"length"`. `model` echoes the request, `id` is
//! `gen-…`, and `usage` is the full `ChatUsage`: tokens (about four
//! characters each), their details, `cost`, `cost_details` and `is_byok`.
//! Choices carry `native_finish_reason` as OpenRouter's do.
//!
//! Forced answers ([`Scripted`]) add what a real client must cope with: a
//! 403 moderation block with its metadata, an HTTP-date `Retry-After`, and
//! 200 completions without a usable reply ([`ChatShape`]: a generation that
//! failed after it started, reasoning only, tool calls, a legacy `text`
//! choice). The legacy choice is documented by OpenRouter
//! (`NonChatChoice`) but not in the OpenAPI document, so it fails
//! `ChatResult` at `message`.
//!
//! `system_fingerprint` is left out on purpose. The OpenAPI document marks
//! it required, but many providers behind OpenRouter never send it, so a
//! client that insists on it breaks on real traffic; the stand-in makes
//! that mistake show up in tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{
    Answer, BodyProblem, ChatShape, OpenRouterCredentials, RecordedRequest, Scripted, Validator,
    http_date_in, json_object, reason,
};

/// How much of the user's message the reply quotes, in characters.
const QUOTE: usize = 200;

/// The start of every reply.
pub const REPLY_PREFIX: &str = "Hello from the OpenRouter stand-in. You said: ";

/// The OpenRouter stand-in's state.
pub(super) struct OpenRouter {
    creds: OpenRouterCredentials,
    generations: AtomicU64,
}

impl OpenRouter {
    pub(super) fn new(creds: OpenRouterCredentials) -> Self {
        OpenRouter {
            creds,
            generations: AtomicU64::new(0),
        }
    }

    pub(super) fn scripted(&self, req: &RecordedRequest, scripted: &Scripted) -> Answer {
        match scripted {
            Scripted::RateLimited { retry_after } => rate_limited(*retry_after),
            Scripted::RateLimitedUntil { retry_after } => {
                error(429, "Rate limit exceeded").header("retry-after", http_date_in(*retry_after))
            }
            Scripted::Status(429) => rate_limited(1.0),
            Scripted::Status(status) => {
                let message = match status {
                    400 => "Invalid request parameters",
                    401 => "No auth credentials found",
                    402 => "Insufficient credits. Add more using https://openrouter.ai/credits",
                    403 => "Only management keys can perform this operation",
                    408 => "Request timed out",
                    502 => "Provider returned error",
                    503 => "No available model provider that meets your routing requirements",
                    _ => reason(*status),
                };
                error(*status, message)
            }
            Scripted::Error {
                status,
                code,
                message,
            } => Answer::new(
                *status,
                json!({ "error": { "code": code, "message": message } }),
            ),
            Scripted::Moderated { reasons } => moderated(&request_body(req), reasons),
            Scripted::Chat(shape) => Answer::new(200, self.shaped(&request_body(req), shape)),
            // Handled by the server before it gets here.
            Scripted::Hang => error(500, "Internal Server Error"),
        }
    }

    pub(super) fn handle(&self, req: &RecordedRequest, validator: Option<&Validator>) -> Answer {
        if req.path.trim_end_matches('/') != "/api/v1/chat/completions" {
            return error(404, "Not Found");
        }
        if req.method != "POST" {
            return error(405, "Method Not Allowed");
        }
        match req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
        {
            None => return error(401, "No auth credentials found"),
            Some(key) if key != self.creds.api_key => return error(401, "Invalid API key"),
            Some(_) => {}
        }
        let body = match json_object(req) {
            Ok(body) => body,
            Err(BodyProblem::ContentType) => {
                return error(415, "Content-Type must be application/json");
            }
            Err(BodyProblem::NotJson) => return error(400, "Invalid JSON in request body"),
        };
        if let Some(validate) = validator
            && let Err(why) = validate("ChatRequest", &body)
        {
            return error(400, &format!("Invalid request parameters: {why}"));
        }
        if let Err(why) = check_request(&body) {
            return error(400, &why);
        }
        Answer::new(200, self.completion(&body))
    }

    /// The `ChatResult` for a request (less `system_fingerprint`).
    fn completion(&self, body: &Value) -> Value {
        let mut reply = format!("{REPLY_PREFIX}{}", quote(body));
        let limit = body["max_completion_tokens"]
            .as_u64()
            .or_else(|| body["max_tokens"].as_u64());
        let mut finish_reason = "stop";
        if let Some(limit) = limit
            && tokens(&reply) > limit
        {
            let chars = usize::try_from(limit.saturating_mul(4)).unwrap_or(usize::MAX);
            reply = reply.chars().take(chars).collect();
            finish_reason = "length";
        }
        let choice = json!({
            "index": 0,
            "finish_reason": finish_reason,
            "native_finish_reason": finish_reason,
            "message": { "role": "assistant", "content": reply },
        });
        self.result(body, choice, tokens(&reply))
    }

    /// A 200 completion without a usable reply.
    fn shaped(&self, body: &Value, shape: &ChatShape) -> Value {
        let (choice, generated) = match shape {
            ChatShape::Failed {
                code,
                message,
                partial,
            } => (
                json!({
                    "index": 0,
                    "finish_reason": "error",
                    "native_finish_reason": "error",
                    "message": { "role": "assistant", "content": partial },
                    "error": { "code": code, "message": message },
                }),
                partial.clone(),
            ),
            ChatShape::ReasoningOnly => {
                let reasoning = "The user wants a greeting. Let me think about the tone first,                                  then about length, then";
                (
                    json!({
                        "index": 0,
                        "finish_reason": "length",
                        "native_finish_reason": "max_tokens",
                        "message": { "role": "assistant", "content": "", "reasoning": reasoning },
                    }),
                    reasoning.to_owned(),
                )
            }
            ChatShape::ToolCalls => {
                let arguments = r#"{"location":"Boston, MA"}"#;
                (
                    json!({
                        "index": 0,
                        "finish_reason": "tool_calls",
                        "native_finish_reason": "tool_calls",
                        "message": {
                            "role": "assistant",
                            "content": null,
                            "tool_calls": [{
                                "id": "call_standin0001",
                                "type": "function",
                                "function": { "name": "get_weather", "arguments": arguments },
                            }],
                        },
                    }),
                    arguments.to_owned(),
                )
            }
            ChatShape::LegacyText => {
                let reply = format!("{REPLY_PREFIX}{}", quote(body));
                (
                    json!({ "index": 0, "finish_reason": "stop", "text": reply }),
                    reply,
                )
            }
        };
        self.result(body, choice, tokens(&generated))
    }

    /// A `ChatResult` around one choice, with the usage of the request and
    /// `completion_tokens` generated.
    fn result(&self, body: &Value, choice: Value, completion_tokens: u64) -> Value {
        let messages = body["messages"].as_array().map_or(&[][..], Vec::as_slice);
        let prompt_tokens: u64 = messages
            .iter()
            .map(|m| tokens(&text_of(&m["content"])))
            .sum();
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let n = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        json!({
            "id": format!("gen-{created}-standin{n:08}"),
            "object": "chat.completion",
            "created": created,
            "model": body["model"],
            "choices": [choice],
            "usage": usage(prompt_tokens, completion_tokens),
        })
    }
}

/// The full `ChatUsage`, priced like a small model: $0.15 per million
/// prompt tokens and $0.60 per million completion tokens.
fn usage(prompt_tokens: u64, completion_tokens: u64) -> Value {
    let prompt_cost = prompt_tokens as f64 * 0.15e-6;
    let completion_cost = completion_tokens as f64 * 0.6e-6;
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 },
        "completion_tokens_details": { "reasoning_tokens": 0 },
        "cost": prompt_cost + completion_cost,
        "is_byok": false,
        "cost_details": {
            "upstream_inference_cost": null,
            "upstream_inference_prompt_cost": prompt_cost,
            "upstream_inference_completions_cost": completion_cost,
        },
    })
}

/// The request body as JSON, or `{}`: forced answers take any request.
fn request_body(req: &RecordedRequest) -> Value {
    json_object(req).unwrap_or_else(|_| json!({}))
}

/// The text of the last user message.
fn last_user_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| text_of(&m["content"]))
        .unwrap_or_default()
}

/// What the reply quotes: the start of the last user message.
fn quote(body: &Value) -> String {
    last_user_text(body).chars().take(QUOTE).collect()
}

/// OpenRouter's moderation block: 403 with the flagged categories and input
/// (at most 100 characters, cut in the middle as OpenRouter does).
fn moderated(body: &Value, reasons: &[String]) -> Answer {
    let model = body["model"].as_str().unwrap_or("openai/gpt-4o-mini");
    let input: Vec<char> = last_user_text(body).chars().collect();
    let flagged: String = if input.len() > 100 {
        let head: String = input[..48].iter().collect();
        let tail: String = input[input.len() - 49..].iter().collect();
        format!("{head}...{tail}")
    } else {
        input.into_iter().collect()
    };
    let quoted: Vec<String> = reasons.iter().map(|r| format!("\"{r}\"")).collect();
    Answer::new(
        403,
        json!({ "error": {
            "code": 403,
            "message": format!(
                "{model} requires moderation on OpenAI. Your input was flagged for {}. \
                 No credits were charged.",
                quoted.join(", ")
            ),
            "metadata": {
                "reasons": reasons,
                "flagged_input": flagged,
                "provider_name": "OpenAI",
                "model_slug": model,
            },
        }}),
    )
}

/// The structural checks made with or without a validator.
fn check_request(body: &Value) -> Result<(), String> {
    if body["model"].as_str().is_none_or(|m| m.trim().is_empty()) {
        return Err("model: expected a non-empty string".to_owned());
    }
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return Err("messages: expected a non-empty array".to_owned());
    };
    for (i, message) in messages.iter().enumerate() {
        let role = message["role"].as_str();
        if !matches!(
            role,
            Some("system" | "user" | "assistant" | "developer" | "tool")
        ) {
            return Err(format!(
                "messages[{i}].role: expected one of system, user, assistant, developer, tool"
            ));
        }
    }
    Ok(())
}

/// The text of a message's content: a string, or the `text` of its parts.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// About four characters a token, at least one.
fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

/// OpenRouter's error body: `{"error":{"code":...,"message":...}}`.
pub(super) fn error(status: u16, message: &str) -> Answer {
    Answer::new(
        status,
        json!({ "error": { "code": status, "message": message } }),
    )
}

fn rate_limited(retry_after: f64) -> Answer {
    let seconds = if retry_after.is_finite() && retry_after > 0.0 {
        retry_after.ceil() as u64
    } else {
        0
    };
    error(429, "Rate limit exceeded").header("retry-after", seconds.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_quotes_the_last_user_message() {
        let o = OpenRouter::new(OpenRouterCredentials {
            api_key: "k".into(),
        });
        let long = "x".repeat(500);
        let r = o.completion(&json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": long}]},
            ],
        }));
        let content = r["choices"][0]["message"]["content"].as_str().unwrap();
        assert_eq!(content, format!("{REPLY_PREFIX}{}", "x".repeat(200)));
        assert_eq!(r["model"], "m");
        assert!(r.get("system_fingerprint").is_none());
    }
}
