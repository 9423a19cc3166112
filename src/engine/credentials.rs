//! What in a node config looks like a credential.
//!
//! A graph is stored, versioned, shown and shared; a token pasted into it
//! would leak through all of those, escape the vault's encryption and the
//! scrubber's knowledge, and never be rotated. Deploy therefore refuses a
//! config that holds something shaped like a credential (this module) or
//! the value of a stored secret (the vault compares keyed fingerprints of
//! [`candidate_values`]).
//!
//! Findings name the field and the kind of credential, never any of the
//! matched text, so the refusal itself cannot leak what it found.
//!
//! ```
//! use narakim::engine::credentials::{looks_like_credentials, CredentialKind};
//! use serde_json::json;
//!
//! let config = json!({"headers": {"Authorization": "Bearer abcdef0123456789abcdef"}});
//! let findings = looks_like_credentials(&config);
//! assert_eq!(findings[0].pointer, "/headers/Authorization");
//! assert_eq!(findings[0].kind, CredentialKind::BearerToken);
//! assert!(looks_like_credentials(&json!({"model": "openai/gpt-4o-mini"})).is_empty());
//! ```

use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use serde_json::Value;
use zeroize::Zeroizing;

use super::template::{pointer_token, walk_strings};

/// The shapes we recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialKind {
    DiscordBotToken,
    OpenRouterKey,
    /// `sk-…`: OpenAI, Anthropic and many others.
    SecretKey,
    /// `Bearer <token>`.
    BearerToken,
    /// `Bot <token>` (Discord's authorization scheme).
    BotToken,
    /// `Basic <base64 of user:password>`.
    BasicCredentials,
    AwsAccessKey,
    GitHubToken,
    SlackToken,
    /// A JSON Web Token (`eyJ….eyJ….…`).
    JsonWebToken,
    PrivateKey,
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialKind::DiscordBotToken => "a Discord bot token",
            CredentialKind::OpenRouterKey => "an OpenRouter API key (sk-or-v1-…)",
            CredentialKind::SecretKey => "an API key (sk-…)",
            CredentialKind::BearerToken => "a Bearer token",
            CredentialKind::BotToken => "a Bot authorization token",
            CredentialKind::BasicCredentials => "Basic authorization credentials",
            CredentialKind::AwsAccessKey => "an AWS access key id",
            CredentialKind::GitHubToken => "a GitHub token",
            CredentialKind::SlackToken => "a Slack token",
            CredentialKind::JsonWebToken => "a JSON Web Token",
            CredentialKind::PrivateKey => "a private key",
        })
    }
}

/// Something shaped like a credential, located but not quoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialFinding {
    /// The node whose config holds it, when the scan was of a whole graph.
    pub node: Option<String>,
    /// JSON pointer of the string (or object key) within the scanned value.
    pub pointer: String,
    pub kind: CredentialKind,
}

impl fmt::Display for CredentialFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "(the whole value)"
        } else {
            &self.pointer
        };
        match &self.node {
            Some(node) => write!(f, "node \"{node}\", config {pointer}: {}", self.kind),
            None => write!(f, "{pointer}: {}", self.kind),
        }
    }
}

/// Every credential-shaped string in `config`: each string value (templates
/// included, as written) and each object key. Sorted, one finding per field
/// and kind.
pub fn looks_like_credentials(config: &Value) -> Vec<CredentialFinding> {
    let mut found = HashSet::new();
    scan_value(config, &mut String::new(), &mut found);
    let mut found: Vec<_> = found.into_iter().collect();
    found.sort();
    found
}

fn scan_value(value: &Value, pointer: &mut String, found: &mut HashSet<CredentialFinding>) {
    match value {
        Value::String(s) => scan_str(s, pointer, found),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                scan_value(item, pointer, found);
                pointer.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&pointer_token(key));
                scan_str(key, pointer, found);
                scan_value(item, pointer, found);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

fn scan_str(s: &str, pointer: &str, found: &mut HashSet<CredentialFinding>) {
    for kind in kinds_in(s) {
        found.insert(CredentialFinding {
            node: None,
            pointer: pointer.to_owned(),
            kind,
        });
    }
}

/// The kinds of credential that `s` appears to contain.
pub fn kinds_in(s: &str) -> HashSet<CredentialKind> {
    let mut kinds = HashSet::new();
    if s.contains("-----BEGIN") && s.contains("PRIVATE KEY") {
        kinds.insert(CredentialKind::PrivateKey);
    }
    for word in runs(s, is_word_byte) {
        if let Some(kind) = prefixed_kind(word) {
            kinds.insert(kind);
        }
    }
    for word in runs(s, |b| is_word_byte(b) || b == b'.') {
        if is_jwt(word) {
            kinds.insert(CredentialKind::JsonWebToken);
        } else if has_discord_token(word) {
            kinds.insert(CredentialKind::DiscordBotToken);
        }
    }
    for (scheme, token) in auth_schemes(s) {
        let kind = match scheme {
            Scheme::Bearer if is_opaque_token(token) => CredentialKind::BearerToken,
            Scheme::Bot if is_opaque_token(token) => CredentialKind::BotToken,
            Scheme::Basic if is_basic_credentials(token) => CredentialKind::BasicCredentials,
            _ => continue,
        };
        kinds.insert(kind);
    }
    kinds
}

/// Base64url characters: what most token formats are made of.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Maximal runs of bytes satisfying `pred` (all ASCII, so they are `str`s).
fn runs(s: &str, pred: impl Fn(u8) -> bool) -> impl Iterator<Item = &str> {
    s.split(move |c: char| !(c.is_ascii() && pred(c as u8)))
        .filter(|w| !w.is_empty())
}

fn has_digit(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
}

/// Tokens known by their prefix. `word` is a whole run of base64url
/// characters, so a prefix inside a longer word (`task-…`) does not count.
fn prefixed_kind(word: &str) -> Option<CredentialKind> {
    let all = |s: &str, pred: fn(u8) -> bool| s.bytes().all(pred);
    if let Some(rest) = word.strip_prefix("sk-or-v1-") {
        let hex_len = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex_len >= 32 {
            return Some(CredentialKind::OpenRouterKey);
        }
    }
    if let Some(rest) = word.strip_prefix("sk-") {
        // Digits too: a hyphenated phrase such as `sk-learn-...` is no key.
        if rest.len() >= 20 && has_digit(rest) && rest.bytes().any(|b| b.is_ascii_alphabetic()) {
            return Some(CredentialKind::SecretKey);
        }
    }
    for prefix in ["AKIA", "ASIA"] {
        if let Some(rest) = word.strip_prefix(prefix)
            && rest.len() == 16
            && all(rest, |b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Some(CredentialKind::AwsAccessKey);
        }
    }
    if word.len() >= 40
        && word.starts_with("gh")
        && matches!(word.as_bytes()[2], b'p' | b'o' | b'u' | b's' | b'r')
        && word.as_bytes()[3] == b'_'
        && all(&word[4..], |b| b.is_ascii_alphanumeric())
    {
        return Some(CredentialKind::GitHubToken);
    }
    if let Some(rest) = word.strip_prefix("github_pat_")
        && rest.len() >= 22
    {
        return Some(CredentialKind::GitHubToken);
    }
    if word.len() >= 15
        && word.starts_with("xox")
        && matches!(word.as_bytes()[3], b'b' | b'a' | b'p' | b'r' | b's')
        && word.as_bytes()[4] == b'-'
        && has_digit(&word[5..])
    {
        return Some(CredentialKind::SlackToken);
    }
    None
}

fn is_base64url(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_word_byte)
}

/// `eyJ` is base64 of `{"`: a JSON header and payload, then a signature.
fn is_jwt(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts[1].starts_with("eyJ")
        && parts.iter().all(|p| is_base64url(p))
        && parts[0].len() >= 10
        && parts[2].len() >= 16
}

/// A Discord bot token: base64 of the bot's numeric id (so it starts with
/// M, N or O, the base64 of an ASCII digit's high bits), a timestamp, and
/// an HMAC, dot-separated.
fn has_discord_token(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.windows(3).any(|w| {
        (23..=28).contains(&w[0].len())
            && matches!(w[0].as_bytes()[0], b'M' | b'N' | b'O')
            && (6..=7).contains(&w[1].len())
            && w[2].len() >= 27
            && w.iter().all(|p| is_base64url(p))
    })
}

#[derive(Clone, Copy)]
enum Scheme {
    Bearer,
    Bot,
    Basic,
}

/// `(scheme, token)` for each `Bearer x`, `Bot x`, `Basic x` in `s`, the
/// scheme word matched case-insensitively and on a word boundary.
fn auth_schemes(s: &str) -> Vec<(Scheme, &str)> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    for (start, _) in s.char_indices() {
        if start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
            continue;
        }
        for (word, scheme) in [
            ("bearer", Scheme::Bearer),
            ("bot", Scheme::Bot),
            ("basic", Scheme::Basic),
        ] {
            let end = start + word.len();
            let Some(candidate) = s.get(start..end) else {
                continue;
            };
            if !candidate.eq_ignore_ascii_case(word) {
                continue;
            }
            let after = &s[end..];
            let trimmed = after.trim_start_matches([' ', '\t']);
            if trimmed.len() == after.len() {
                continue; // no space: `Botany`, `bearers`
            }
            let token_len = trimmed
                .bytes()
                .take_while(|&b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))
                .count();
            out.push((scheme, &trimmed[..token_len]));
        }
    }
    out
}

/// A token as it follows `Bearer` / `Bot`: long, and with letters and
/// digits, so a sentence's next word (`Bot notifications`) is not one.
fn is_opaque_token(token: &str) -> bool {
    token.len() >= 16 && has_digit(token) && token.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Base64 of printable `user:password`.
fn is_basic_credentials(token: &str) -> bool {
    if token.len() < 8 {
        return false;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(token));
    let Ok(decoded) = decoded.map(Zeroizing::new) else {
        return false;
    };
    decoded.contains(&b':') && decoded.iter().all(|b| (0x20..0x7f).contains(b))
}

/// Bytes that separate the fine-grained tokens a secret might be one of.
fn is_fine_separator(c: char) -> bool {
    c.is_whitespace() || "\"',;=:&?/".contains(c)
}

/// Bytes that separate the coarse tokens (a secret may contain `:` or `/`,
/// as base64 and `user:password` do).
fn is_coarse_separator(c: char) -> bool {
    c.is_whitespace() || "\"',;".contains(c)
}

/// The strings a stored secret's value could be hiding as in `config`,
/// with the JSON pointer of the string each comes from: every whole string,
/// its tokens split on whitespace and quotes (`,;` too), finer tokens split
/// also on `=:&?/`, and the token after `Bearer` / `Bot` / `Basic`. Empty
/// strings and repeats within a string are left out.
///
/// The vault compares keyed fingerprints of these with the stored ones.
/// Each candidate is wiped when dropped, since one may be a secret.
pub fn candidate_values(config: &Value) -> Vec<(String, Zeroizing<String>)> {
    let mut out = Vec::new();
    let _ = walk_strings(config, &mut String::new(), &mut |pointer, s| {
        for c in candidates_in(s) {
            out.push((pointer.to_owned(), Zeroizing::new(c.to_owned())));
        }
        Ok::<(), ()>(())
    });
    out
}

/// The candidates of one string, borrowed from it, first seen first.
fn candidates_in(s: &str) -> Vec<&str> {
    let mut seen = HashSet::new();
    let auth = auth_schemes(s).into_iter().map(|(_, token)| token);
    std::iter::once(s)
        .chain(auth)
        .chain(s.split(is_coarse_separator))
        .chain(s.split(is_fine_separator))
        .map(str::trim)
        .filter(|c| !c.is_empty() && seen.insert(*c))
        .collect()
}

/// Why deploy is refused, with every finding, and where the secret goes
/// instead.
pub fn refusal_message(findings: &[CredentialFinding]) -> String {
    let mut msg =
        String::from("deploy refused: the graph holds something that looks like a credential:\n");
    for f in findings {
        msg.push_str(&format!("  - {f}\n"));
    }
    msg.push_str(
        "Secrets belong in the vault, never in a graph, where they would be stored, versioned \
         and shown in plain text. Store the value with `narakim secret set NAME --bot BOT` \
         (or as a team secret) and let the extension read it: use a secret the extension \
         declares, or put the secret's NAME (not its value) in the config field that names a \
         secret. Then remove the value from the graph, and rotate it if it was shared.",
    );
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Fake credentials, made up for these tests, in the real shapes.
    const DISCORD: &str =
        "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB";
    const OPENROUTER: &str =
        "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const OPENAI: &str = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t";
    const GITHUB: &str = "ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123";
    const AWS: &str = "AKIAIOSFODNN7EXAMPLE";
    const SLACK: &str = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn kinds(v: Value) -> Vec<(String, CredentialKind)> {
        looks_like_credentials(&v)
            .into_iter()
            .map(|f| (f.pointer, f.kind))
            .collect()
    }

    #[test]
    fn finds_known_shapes() {
        use CredentialKind::*;
        let cases: Vec<(String, CredentialKind)> = vec![
            (DISCORD.into(), DiscordBotToken),
            (format!("token={DISCORD}&x=1"), DiscordBotToken),
            (OPENROUTER.into(), OpenRouterKey),
            (format!("key: {OPENAI}"), SecretKey),
            (format!("Bearer {OPENAI}"), BearerToken),
            ("bearer abcdef0123456789abcdef".into(), BearerToken),
            ("Authorization: Bot aGVsbG8gd29ybGQgMTIzNDU2".into(), BotToken),
            ("Basic dXNlcjpwYXNzd29yZA==".into(), BasicCredentials),
            (format!("aws {AWS}"), AwsAccessKey),
            (GITHUB.into(), GitHubToken),
            (
                "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz".into(),
                GitHubToken,
            ),
            (SLACK.into(), SlackToken),
            (JWT.into(), JsonWebToken),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----".into(),
                PrivateKey,
            ),
        ];
        for (text, kind) in cases {
            let found = kinds(json!({"f": text}));
            assert!(
                found.contains(&("/f".to_owned(), kind)),
                "{kind:?} not found in {text:?}: {found:?}"
            );
        }
        // A Discord token after `Bot` is both.
        assert_eq!(
            kinds(json!({"h": {"Authorization": format!("Bot {DISCORD}")}})),
            vec![
                ("/h/Authorization".to_owned(), DiscordBotToken),
                ("/h/Authorization".to_owned(), BotToken)
            ]
        );
        // Deep in arrays, in template text, and in keys.
        assert_eq!(
            kinds(
                json!({"a": [1, {"b": format!("{{{{trigger.x}}}} {OPENROUTER}")}], OPENROUTER: 1})
            ),
            vec![
                ("/a/1/b".to_owned(), OpenRouterKey),
                (format!("/{OPENROUTER}"), OpenRouterKey),
            ]
        );
        assert_eq!(
            kinds(json!(OPENROUTER)),
            vec![(String::new(), OpenRouterKey)]
        );
    }

    #[test]
    fn ordinary_text_is_not_a_credential() {
        let config = json!({
            "channel_id": "123456789012345678",
            "guild": 123456789012345678u64,
            "url": "https://discord.com/api/v10/channels/123456789012345678/messages?limit=50&after=0",
            "model": "openai/gpt-4o-mini",
            "other_model": "anthropic/claude-3.5-sonnet",
            "content": "The Bot answers questions. Bearer of good news: basic information for everyone.",
            "prompt": "Summarise {{nodes.fetch.output.text}} for {{trigger.user.name}} in two sentences.",
            "secret": "OPENROUTER_API_KEY",
            "task": "task-scheduler-for-background-jobs-2024",
            "library": "sk-learn-compatible-estimators-everywhere",
            "hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "uuid": "550e8400-e29b-41d4-a716-446655440000",
            "domain": "cdn.discordapp.com/attachments/1234/5678/image.png",
            "robot": "Robotics 0123456789abcdefghij",
            "version": "narakim@0.1.0",
        });
        assert_eq!(looks_like_credentials(&config), vec![]);
    }

    #[test]
    fn findings_never_hold_the_value() {
        let findings = looks_like_credentials(&json!({"x": OPENROUTER}));
        let shown = format!("{findings:?} {}", refusal_message(&findings));
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }

    #[test]
    fn refusal_message_shape() {
        let findings = vec![
            CredentialFinding {
                node: Some("post".into()),
                pointer: "/headers/Authorization".into(),
                kind: CredentialKind::BotToken,
            },
            CredentialFinding {
                node: None,
                pointer: "/x".into(),
                kind: CredentialKind::OpenRouterKey,
            },
        ];
        let msg = refusal_message(&findings);
        assert!(msg.starts_with(
            "deploy refused: the graph holds something that looks like a credential:\n  \
             - node \"post\", config /headers/Authorization: a Bot authorization token\n  \
             - /x: an OpenRouter API key (sk-or-v1-…)\n\
             Secrets belong in the vault"
        ));
        assert!(msg.contains("narakim secret set NAME --bot BOT"));
    }

    #[test]
    fn candidates_cover_whole_strings_and_tokens() {
        let config = json!({
            "a": "Bearer s3cr3t/val:ue",
            "b": ["https://x.example/p?key=hunter22&y=1"],
            "n": 5,
        });
        let got: Vec<(String, String)> = candidate_values(&config)
            .into_iter()
            .map(|(p, c)| (p, c.to_string()))
            .collect();
        let has = |p: &str, c: &str| got.contains(&(p.to_owned(), c.to_owned()));
        assert!(has("/a", "Bearer s3cr3t/val:ue"));
        assert!(has("/a", "s3cr3t/val:ue"), "{got:?}");
        assert!(has("/a", "s3cr3t"));
        assert!(has("/a", "ue"));
        assert!(has("/b/0", "https://x.example/p?key=hunter22&y=1"));
        assert!(has("/b/0", "hunter22"));
        assert!(has("/b/0", "x.example"));
        // No repeats within a string.
        let a_count = got
            .iter()
            .filter(|(p, c)| p == "/a" && c == "s3cr3t/val:ue")
            .count();
        assert_eq!(a_count, 1);
        assert!(got.iter().all(|(p, _)| p != "/n"));
    }
}
