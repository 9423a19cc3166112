//! Triggers: what starts a deployed bot from outside.
//!
//! A graph may declare `triggers`. Each names the secret that holds its
//! key and never the key itself, so keys stay in the vault like every
//! other credential, and a trigger that cannot prove its sender is refused
//! at deploy rather than left open:
//!
//! ```toml
//! [[triggers]]
//! id = "push"
//! kind = "webhook"
//! verify = { scheme = "github", secret = "GITHUB_WEBHOOK_SECRET" }
//! ```
//!
//! [`verify`] holds one verifier per signature scheme; this module holds
//! the declarations, their validation, and what a verified delivery hands
//! the graph as `{{trigger.*}}` ([`delivery_input`]).
//!
//! ```
//! use narakim::trigger::Trigger;
//!
//! let t: Trigger = toml::from_str(r#"
//!     id = "push"
//!     kind = "webhook"
//!     verify = { scheme = "github", secret = "GITHUB_WEBHOOK_SECRET" }
//! "#).unwrap();
//! assert_eq!(t.id(), "push");
//! assert_eq!(t.secret(), Some("GITHUB_WEBHOOK_SECRET"));
//! assert!(t.problems().is_empty());
//! ```

pub mod schedule;
pub mod verify;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::vault::SecretName;
use verify::Scheme;

/// The signed timestamp's default tolerance, either side of now.
pub const DEFAULT_TOLERANCE_SECONDS: u32 = 300;

/// The largest tolerance a trigger may set: past an hour a captured
/// delivery stays replayable for too long.
pub const MAX_TOLERANCE_SECONDS: u32 = 3600;

/// The secret a `discord-interactions` trigger reads when it names none.
pub const DISCORD_PUBLIC_KEY: &str = "DISCORD_PUBLIC_KEY";

/// The secret each run a Discord interaction starts can read: the
/// interaction's token, which lets its holder post as the bot for 15
/// minutes. It is never stored, and only the run its interaction started
/// can read it (see
/// [`Engine::hold_execution_values`](crate::engine::executor::Engine::hold_execution_values)).
pub const DISCORD_INTERACTION_TOKEN: &str = "DISCORD_INTERACTION_TOKEN";

/// One trigger of a graph, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Trigger {
    /// `POST /hooks/{trigger_id}`, signed by the sender.
    Webhook {
        id: String,
        /// Missing is allowed here so validation can say what to add.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        verify: Option<Box<Verify>>,
        /// How far the signed timestamp may be from now, in seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tolerance_seconds: Option<u32>,
    },
    /// `POST /interactions/{trigger_id}`: a Discord application's
    /// interactions endpoint, verified with its public key.
    DiscordInteractions {
        id: String,
        /// The secret holding the application's public key (hex).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    /// A cron schedule in a time zone (see [`schedule`]).
    Schedule {
        id: String,
        cron: String,
        timezone: String,
        /// What to do about fires missed while the server was down.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        missed: Option<Missed>,
    },
}

/// A schedule's policy for fires missed while no server ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Missed {
    /// Skip them; the schedule goes on from the next fire time.
    #[default]
    Skip,
    /// Run once for all of them, then go on.
    RunOnce,
}

/// How late a fire may run and still count as on time, not missed.
pub const MISSED_AFTER_MS: i64 = 60_000;

/// How a webhook proves its sender: the scheme, the secret that holds the
/// key, and for `hmac` the rest of the recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    pub scheme: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// `hmac` only: the header that carries the signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// `hmac` only: `sha256` or `sha512`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// `hmac` only: `hex` or `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// `hmac` only: text before the signature, such as `sha256=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// `hmac` only: what is signed, from `{body}`, `{timestamp}` and
    /// `{header:NAME}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// `hmac` only: the header that carries the signed timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// `hmac` only: the header that carries the delivery id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_header: Option<String>,
    /// `hmac` only: how the stored key is written: `raw`, `hex`, `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_encoding: Option<String>,
}

/// The schemes a webhook's `verify.scheme` may name.
pub const SCHEMES: &[&str] = &["standard-webhooks", "github", "stripe", "slack", "hmac"];

impl Trigger {
    pub fn id(&self) -> &str {
        match self {
            Trigger::Webhook { id, .. }
            | Trigger::DiscordInteractions { id, .. }
            | Trigger::Schedule { id, .. } => id,
        }
    }

    /// The secrets this trigger hands each run it starts, rather than
    /// the vault.
    pub fn provides(&self) -> &'static [&'static str] {
        match self {
            Trigger::Webhook { .. } | Trigger::Schedule { .. } => &[],
            Trigger::DiscordInteractions { .. } => &[DISCORD_INTERACTION_TOKEN],
        }
    }

    /// The kind as written in a graph.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Webhook { .. } => "webhook",
            Trigger::DiscordInteractions { .. } => "discord-interactions",
            Trigger::Schedule { .. } => "schedule",
        }
    }

    /// The name of the secret that holds the trigger's key, as written.
    pub fn secret(&self) -> Option<&str> {
        match self {
            Trigger::Webhook { verify, .. } => verify.as_ref()?.secret.as_deref(),
            Trigger::DiscordInteractions { secret, .. } => {
                Some(secret.as_deref().unwrap_or(DISCORD_PUBLIC_KEY))
            }
            Trigger::Schedule { .. } => None,
        }
    }

    /// A schedule's parsed expression, once [`problems`](Self::problems)
    /// found none; `None` for other kinds.
    pub fn schedule(&self) -> Option<schedule::Schedule> {
        match self {
            Trigger::Schedule { cron, timezone, .. } => {
                schedule::Schedule::parse(cron, timezone).ok()
            }
            _ => None,
        }
    }

    /// A schedule's missed-fire policy.
    pub fn missed(&self) -> Missed {
        match self {
            Trigger::Schedule { missed, .. } => missed.unwrap_or_default(),
            _ => Missed::Skip,
        }
    }

    /// The tolerance of the signed timestamp, in seconds.
    pub fn tolerance(&self) -> u32 {
        match self {
            Trigger::Webhook {
                tolerance_seconds, ..
            } => tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS),
            Trigger::DiscordInteractions { .. } | Trigger::Schedule { .. } => {
                DEFAULT_TOLERANCE_SECONDS
            }
        }
    }

    /// The verifier, once [`problems`](Self::problems) found none.
    pub fn scheme(&self) -> Result<Scheme, String> {
        match self {
            Trigger::DiscordInteractions { .. } => Ok(Scheme::Discord),
            Trigger::Schedule { .. } => {
                Err("a schedule is not a request: it has no verifier".into())
            }
            Trigger::Webhook { verify: None, .. } => Err(no_verifier()),
            Trigger::Webhook {
                verify: Some(v), ..
            } => v.scheme(),
        }
    }

    /// Everything wrong with the declaration itself, each message saying
    /// how to fix it. Never quotes what was written where a secret's name
    /// belongs: a pasted key must not reach a log.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !crate::engine::template::is_valid_node_id(self.id()) {
            problems.push(
                "the id must be 1-64 characters of a-z, A-Z, 0-9, _ and -, for example \"push\""
                    .to_owned(),
            );
        }
        match self {
            Trigger::Webhook {
                verify,
                tolerance_seconds,
                ..
            } => {
                if let Some(t) = tolerance_seconds
                    && !(1..=MAX_TOLERANCE_SECONDS).contains(t)
                {
                    problems.push(format!(
                        "tolerance_seconds must be 1 to {MAX_TOLERANCE_SECONDS} (the default is {DEFAULT_TOLERANCE_SECONDS})"
                    ));
                }
                match verify {
                    None => problems.push(no_verifier()),
                    Some(v) => {
                        if let Err(e) = v.scheme() {
                            problems.push(e);
                        }
                        problems.extend(secret_name_problem("verify.secret", v.secret.as_deref()));
                    }
                }
            }
            Trigger::DiscordInteractions { secret, .. } => {
                problems.extend(secret_name_problem(
                    "secret",
                    Some(secret.as_deref().unwrap_or(DISCORD_PUBLIC_KEY)),
                ));
            }
            Trigger::Schedule { cron, timezone, .. } => {
                match schedule::Schedule::parse(cron, timezone) {
                    Err(e) => problems.push(e),
                    Ok(s) if s.next_after(now_ms()).is_none() => problems.push(
                        "the cron expression never fires (no such date within five years)".into(),
                    ),
                    Ok(_) => {}
                }
            }
        }
        problems
    }
}

fn no_verifier() -> String {
    format!(
        "a webhook must verify its sender: add verify = {{ scheme = \"…\", secret = \"NAME\" }} \
         with a scheme of {}; narakim runs no unverified webhook",
        SCHEMES.join(", ")
    )
}

/// Why `field` does not name a secret. It must be a secret's name written
/// out, so neither a key pasted in nor a template the delivery could fill.
fn secret_name_problem(field: &str, name: Option<&str>) -> Option<String> {
    let Some(name) = name else {
        return Some(format!(
            "{field} is missing: name the secret that holds the key, for example \"WEBHOOK_SIGNING_SECRET\""
        ));
    };
    if name.contains("{{") {
        return Some(format!(
            "{field} must be a secret's name written out, not a template: a delivery must not choose which secret is read"
        ));
    }
    SecretName::new(name).err().map(|_| {
        format!(
            "{field} must name the secret that holds the key (A-Z, 0-9 and _, starting with a letter, \
             for example \"WEBHOOK_SIGNING_SECRET\"), never the key itself; store the key with \
             `narakim secret set NAME --bot BOT`"
        )
    })
}

impl Verify {
    /// The verifier this names, or why it names none.
    pub fn scheme(&self) -> Result<Scheme, String> {
        let hmac_fields = [
            ("header", self.header.is_some()),
            ("algorithm", self.algorithm.is_some()),
            ("encoding", self.encoding.is_some()),
            ("prefix", self.prefix.is_some()),
            ("content", self.content.is_some()),
            ("timestamp_header", self.timestamp_header.is_some()),
            ("delivery_header", self.delivery_header.is_some()),
            ("key_encoding", self.key_encoding.is_some()),
        ];
        let fixed = match self.scheme.as_str() {
            "standard-webhooks" => Some(Scheme::StandardWebhooks),
            "github" => Some(Scheme::Github),
            "stripe" => Some(Scheme::Stripe),
            "slack" => Some(Scheme::Slack),
            "hmac" => None,
            "none" | "" => return Err(no_verifier()),
            _ => {
                return Err(format!(
                    "verify.scheme {:?} is not a scheme narakim knows; use one of {}",
                    crate::redact::printable(&self.scheme),
                    SCHEMES.join(", ")
                ));
            }
        };
        if let Some(scheme) = fixed {
            let extra: Vec<&str> = hmac_fields
                .iter()
                .filter(|(_, set)| *set)
                .map(|(f, _)| *f)
                .collect();
            if !extra.is_empty() {
                return Err(format!(
                    "verify.{} belong{} to scheme \"hmac\" only; scheme \"{}\" fixes its own headers and content",
                    extra.join(", verify."),
                    if extra.len() == 1 { "s" } else { "" },
                    self.scheme
                ));
            }
            return Ok(scheme);
        }
        let mut spec = Map::new();
        for (field, value) in [
            ("header", &self.header),
            ("algorithm", &self.algorithm),
            ("encoding", &self.encoding),
            ("prefix", &self.prefix),
            ("content", &self.content),
            ("timestamp_header", &self.timestamp_header),
            ("delivery_header", &self.delivery_header),
            ("key_encoding", &self.key_encoding),
        ] {
            if let Some(value) = value {
                spec.insert(field.to_owned(), Value::String(value.clone()));
            }
        }
        if !spec.contains_key("header") {
            return Err(
                "scheme \"hmac\" needs verify.header, the header that carries the signature"
                    .to_owned(),
            );
        }
        for (field, default) in [
            ("algorithm", "sha256"),
            ("encoding", "hex"),
            ("content", "{body}"),
        ] {
            spec.entry(field)
                .or_insert_with(|| Value::String(default.to_owned()));
        }
        let spec: verify::hmac::HmacSpec = serde_json::from_value(Value::Object(spec))
            .map_err(|e| format!("verify (scheme \"hmac\"): {e}"))?;
        spec.validate()
            .map_err(|e| format!("verify (scheme \"hmac\"): {e}"))?;
        Ok(Scheme::Hmac(spec))
    }
}

/// Where `trigger` listens once deployed with `id`: `/hooks/ID` for a
/// webhook, `/interactions/ID` for Discord, nowhere for a schedule.
pub fn path(trigger: &Trigger, id: &str) -> Option<String> {
    match trigger {
        Trigger::Webhook { .. } => Some(format!("/hooks/{id}")),
        Trigger::DiscordInteractions { .. } => Some(format!("/interactions/{id}")),
        Trigger::Schedule { .. } => None,
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Request headers a graph may read as `{{trigger.headers.NAME}}`: what
/// says which event it is and from where, never what authenticates it.
const SAFE_HEADERS: &[&str] = &[
    "content-type",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "x-github-delivery",
    "x-github-event",
    "x-github-hook-id",
    "x-github-hook-installation-target-id",
    "x-github-hook-installation-target-type",
    "x-slack-request-timestamp",
    "x-slack-retry-num",
    "x-slack-retry-reason",
    "x-request-id",
];

/// What a verified delivery gives the graph as `{{trigger.*}}`: which
/// trigger, the delivery id, the safe headers, and the body (JSON when it
/// parses, else text, else base64 in `body_base64`). The caller scrubs it
/// of the bot's secret values before it is stored.
pub fn delivery_input(
    trigger: &Trigger,
    scheme: &Scheme,
    delivery_id: Option<&str>,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Value {
    let mut safe = Map::new();
    let extra: Vec<&str> = match scheme {
        Scheme::Hmac(spec) => [&spec.timestamp_header, &spec.delivery_header]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect(),
        _ => Vec::new(),
    };
    for name in SAFE_HEADERS.iter().copied().chain(extra) {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            safe.insert(name.to_ascii_lowercase(), Value::String(value.to_owned()));
        }
    }
    let mut input = json!({
        "kind": trigger.kind(),
        "trigger": trigger.id(),
        "delivery_id": delivery_id,
        "headers": safe,
    });
    let (key, body) = match serde_json::from_slice::<Value>(body) {
        Ok(value) => ("body", value),
        Err(_) => match std::str::from_utf8(body) {
            Ok(text) => ("body", Value::String(text.to_owned())),
            Err(_) => {
                use base64::Engine as _;
                (
                    "body_base64",
                    Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
                )
            }
        },
    };
    input[key] = body;
    input
}

/// The delivery id a scheme carries in its verified body rather than a
/// header: Stripe's event `id`, Slack's `event_id`, Discord's interaction
/// `id`. Read only after the signature held.
pub fn body_delivery_id(scheme: &Scheme, body: &Value) -> Option<String> {
    let field = match scheme {
        Scheme::Stripe | Scheme::Discord => "id",
        Scheme::Slack => "event_id",
        _ => return None,
    };
    body.get(field)?
        .as_str()
        .filter(|id| !id.is_empty() && id.len() <= 255)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Trigger {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_webhook_without_a_verifier_or_with_a_literal_key_is_refused() {
        let none = parse("id = \"h\"\nkind = \"webhook\"");
        assert!(none.problems()[0].contains("must verify its sender"));
        let off = parse("id = \"h\"\nkind = \"webhook\"\nverify = { scheme = \"none\" }");
        assert!(
            off.problems()
                .iter()
                .any(|p| p.contains("must verify its sender"))
        );
        let literal = parse(
            "id = \"h\"\nkind = \"webhook\"\nverify = { scheme = \"github\", secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\" }",
        );
        let problems = literal.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("never the key itself"));
        assert!(!problems[0].contains("MfKQ9r8"), "the key is not echoed");
        let template = parse(
            "id = \"h\"\nkind = \"webhook\"\nverify = { scheme = \"github\", secret = \"{{trigger.body.name}}\" }",
        );
        assert!(template.problems()[0].contains("not a template"));
    }

    #[test]
    fn hmac_fields_belong_to_hmac_and_hmac_needs_its_header() {
        let mixed = parse(
            "id = \"h\"\nkind = \"webhook\"\nverify = { scheme = \"github\", secret = \"K\", header = \"X-Sig\" }",
        );
        assert!(mixed.problems()[0].contains("belongs to scheme \"hmac\" only"));
        let bare =
            parse("id = \"h\"\nkind = \"webhook\"\nverify = { scheme = \"hmac\", secret = \"K\" }");
        assert!(bare.problems()[0].contains("needs verify.header"));
        let good = parse(
            "id = \"h\"\nkind = \"webhook\"\nverify = { scheme = \"hmac\", secret = \"K\", header = \"X-Sig\", prefix = \"sha256=\" }",
        );
        assert!(good.problems().is_empty(), "{:?}", good.problems());
        assert!(matches!(good.scheme(), Ok(Scheme::Hmac(_))));
    }

    #[test]
    fn unknown_fields_and_kinds_do_not_parse() {
        assert!(toml::from_str::<Trigger>("id = \"h\"\nkind = \"webhook\"\nurl = \"x\"").is_err());
        assert!(toml::from_str::<Trigger>("id = \"h\"\nkind = \"carrier-pigeon\"").is_err());
    }

    #[test]
    fn the_input_holds_safe_headers_only() {
        let t = parse(
            "id = \"h\"\nkind = \"webhook\"\nverify = { scheme = \"github\", secret = \"K\" }",
        );
        let mut headers = http::HeaderMap::new();
        headers.insert("x-github-event", "push".parse().unwrap());
        headers.insert("x-hub-signature-256", "sha256=00".parse().unwrap());
        headers.insert("authorization", "Bearer x".parse().unwrap());
        headers.insert("cookie", "a=b".parse().unwrap());
        let input = delivery_input(&t, &Scheme::Github, Some("d1"), &headers, b"{\"a\":1}");
        assert_eq!(input["headers"], json!({"x-github-event": "push"}));
        assert_eq!(input["body"], json!({"a": 1}));
        assert_eq!(input["delivery_id"], "d1");
        let binary = delivery_input(&t, &Scheme::Github, None, &headers, &[0xff, 0]);
        assert_eq!(binary["body_base64"], "/wA=");
    }
}
