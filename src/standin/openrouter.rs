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
//! enough to post to Discord as is. `model` echoes the request, `id` is
//! `gen-…`, `usage` counts about four characters a token.
//!
//! `system_fingerprint` is left out on purpose. The OpenAPI document marks
//! it required, but many providers behind OpenRouter never send it, so a
//! client that insists on it breaks on real traffic; the stand-in makes
//! that mistake show up in tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{
    Answer, BodyProblem, OpenRouterCredentials, RecordedRequest, Scripted, Validator, json_object,
    reason,
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

    pub(super) fn scripted(&self, scripted: &Scripted) -> Answer {
        match *scripted {
            Scripted::RateLimited { retry_after } => rate_limited(retry_after),
            Scripted::Status(429) => rate_limited(1.0),
            Scripted::Status(status) => {
                let message = match status {
                    400 => "Invalid request parameters",
                    401 => "No auth credentials found",
                    402 => "Insufficient credits. Add more using https://openrouter.ai/credits",
                    408 => "Request timed out",
                    502 => "Provider returned error",
                    503 => "No available model provider that meets your routing requirements",
                    _ => reason(status),
                };
                error(status, message)
            }
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
        let messages = body["messages"].as_array().map_or(&[][..], Vec::as_slice);
        let said = messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| text_of(&m["content"]))
            .unwrap_or_default();
        let quoted: String = said.chars().take(QUOTE).collect();
        let reply = format!("{REPLY_PREFIX}{quoted}");
        let prompt_tokens: u64 = messages
            .iter()
            .map(|m| tokens(&text_of(&m["content"])))
            .sum();
        let completion_tokens = tokens(&reply);
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let n = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        json!({
            "id": format!("gen-{created}-standin{n:08}"),
            "object": "chat.completion",
            "created": created,
            "model": body["model"],
            "choices": [{
                "index": 0,
                "finish_reason": "stop",
                "message": { "role": "assistant", "content": reply },
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        })
    }
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
