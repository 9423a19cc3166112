//! Host-side injection: the guest holds a
//! placeholder, the host puts the value in, in declared places only.
//!
//! [`super::egress`] calls it for every outgoing request of an invocation
//! and for every response it hands back.
//!
//! A [`Credentials`] belongs to one invocation. [`Credentials::issue`]
//! gives a placeholder for a secret: `nrkph_` and 128 random bits in hex,
//! new for every invocation, so one seen in a log is useless anywhere else.
//! [`Credentials::substitute`] then, for one outgoing request:
//! 1. finds every placeholder in every part (method, host, path, query,
//!    header names and values, body), in the raw text and again after
//!    percent- and JSON-escapes are undone, as the receiver would decode
//!    them;
//! 2. refuses the request when a placeholder stands anywhere its secret
//!    did not declare (a header it names, with its format; the query or the
//!    body, each only when opted in), when it stands escaped, when it is not
//!    one of this invocation's, when the destination is not one of the
//!    secret's hosts, or when the request is not HTTPS (an operator's
//!    upstream mapping excepted, decided by the caller);
//! 3. substitutes, and reports each use (secret and host) for the audit.
//!
//! [`Credentials::reflect`] takes a response back: every value the request
//! carried is replaced by its placeholder before the guest sees it, so a
//! host that echoes requests hands nothing back.

use std::collections::HashMap;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::redact::decode::{Escapes, decode};

/// Every placeholder starts with this.
pub const PREFIX: &str = "nrkph_";
/// Hex digits after the prefix.
const TOKEN_HEX: usize = 32;

/// Where a secret's placeholder may be substituted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Injection {
    /// Header name (any case) and the value's format, with one `{}` where
    /// the secret goes: `("authorization", "Bot {}")`.
    pub headers: Vec<(String, String)>,
    /// The placeholder may stand in the path (put in as a percent-encoded
    /// path segment).
    pub path: bool,
    /// The placeholder may stand in the query string (percent-encoded in).
    pub query: bool,
    /// The placeholder may stand in the body (escaped for its content type:
    /// inside a JSON string, percent-encoded in a form, as it is otherwise).
    pub body: bool,
}

struct Entry {
    name: String,
    value: Zeroizing<String>,
    hosts: Arc<[String]>,
    injection: Arc<Injection>,
}

/// One outgoing request, as the guest built it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The host the request goes to (lower case, no port or user info).
    pub host: String,
    /// The whole authority as the guest wrote it (user info and port
    /// included), where no placeholder may stand.
    pub authority: String,
    /// HTTPS, or an operator-mapped upstream (the caller decides).
    pub secure: bool,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// Why a request carrying a placeholder was refused. Names only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "a placeholder of {name} stands in the {part}, where {name} did not declare it may be substituted"
    )]
    Undeclared { name: String, part: String },
    #[error(
        "a placeholder of {name} stands escaped in the {part}; placeholders are substituted only as they were issued"
    )]
    Escaped { name: String, part: String },
    #[error(
        "the {part} holds a placeholder this invocation did not issue (one from another invocation, or forged)"
    )]
    Foreign { part: String },
    #[error("{name} may not be sent to {host}")]
    Host { name: String, host: String },
    #[error("{name} is sent only over HTTPS")]
    Insecure { name: String },
}

/// One substitution, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    pub name: String,
    pub host: String,
}

/// What a path segment may hold as it is (RFC 3986 unreserved).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How a body's receiver will decode it, from its `Content-Type`.
#[derive(Clone, Copy)]
enum BodyKind {
    Json,
    Form,
    Other,
}

impl BodyKind {
    fn of(headers: &[(String, Vec<u8>)]) -> Self {
        let Some((_, value)) = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        else {
            return BodyKind::Other;
        };
        let essence = String::from_utf8_lossy(value)
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence == "application/json" || essence.ends_with("+json") {
            BodyKind::Json
        } else if essence == "application/x-www-form-urlencoded" {
            BodyKind::Form
        } else {
            BodyKind::Other
        }
    }

    /// `value` as it must stand for the receiver to decode it unchanged.
    fn encode(self, value: &str) -> String {
        match self {
            BodyKind::Json => {
                let quoted = serde_json::to_string(value).unwrap_or_default();
                quoted[1..quoted.len() - 1].to_owned()
            }
            BodyKind::Form => {
                percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            }
            BodyKind::Other => value.to_owned(),
        }
    }
}

/// The placeholders of one invocation.
#[derive(Default)]
pub struct Credentials {
    /// Keyed by the placeholder's hex (random, so a fast hasher).
    by_token: HashMap<String, Entry, foldhash::fast::RandomState>,
}

/// Random bytes from the OS not used yet, per thread: one read serves
/// many placeholders (a system call per invocation was a measurable part
/// of one). A placeholder is worth nothing outside the invocation it was
/// issued to, so bytes waiting here for a later one give nobody anything.
const RANDOM_POOL: usize = 1024;

thread_local! {
    static RANDOM: std::cell::RefCell<(usize, [u8; RANDOM_POOL])> =
        const { std::cell::RefCell::new((RANDOM_POOL, [0; RANDOM_POOL])) };
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("placeholders", &self.by_token.len())
            .finish_non_exhaustive()
    }
}

/// Every placeholder-shaped token in `text` (lowercase hex), with where it
/// starts.
fn tokens(text: &[u8]) -> Vec<(usize, String)> {
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(&lower[from..], PREFIX.as_bytes()) {
        let start = from + at;
        let digits = start + PREFIX.len();
        let hex = lower.get(digits..digits + TOKEN_HEX);
        if let Some(hex) = hex.filter(|h| h.iter().all(u8::is_ascii_hexdigit)) {
            out.push((start, String::from_utf8_lossy(hex).into_owned()));
        }
        from = start + 1;
    }
    out
}

impl Credentials {
    /// The placeholder for `name`, bound to `hosts`, substitutable where
    /// `injection` says: new for the invocation's first request of `name`,
    /// the same one after that (so a guest asking in a loop holds one entry,
    /// not one per call).
    pub fn issue(
        &mut self,
        name: &str,
        value: Zeroizing<String>,
        hosts: impl Into<Arc<[String]>>,
        injection: impl Into<Arc<Injection>>,
    ) -> String {
        let placeholder = |hex: &str| {
            let mut placeholder = String::with_capacity(PREFIX.len() + TOKEN_HEX);
            placeholder.push_str(PREFIX);
            placeholder.push_str(hex);
            placeholder
        };
        if let Some((hex, _)) = self.by_token.iter().find(|(_, e)| e.name == name) {
            return placeholder(hex);
        }
        let hex = self.fresh_hex();
        let issued = placeholder(&hex);
        self.by_token.insert(
            hex,
            Entry {
                name: name.to_owned(),
                value,
                hosts: hosts.into(),
                injection: injection.into(),
            },
        );
        issued
    }

    /// 128 fresh random bits in lower-case hex.
    fn fresh_hex(&mut self) -> String {
        const BYTES: usize = TOKEN_HEX / 2;
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(TOKEN_HEX);
        RANDOM.with_borrow_mut(|(used, pool)| {
            if *used + BYTES > RANDOM_POOL {
                getrandom::fill(pool).expect("the OS random source works");
                *used = 0;
            }
            let fresh = &mut pool[*used..*used + BYTES];
            for b in fresh.iter() {
                hex.push(DIGITS[usize::from(b >> 4)] as char);
                hex.push(DIGITS[usize::from(b & 15)] as char);
            }
            // Taken bytes are not left for anyone to read again.
            fresh.fill(0);
            *used += BYTES;
        });
        hex
    }

    /// Checks one part: every token in it must be ours, and stand raw.
    /// Returns the entries of the raw tokens found.
    fn scan(&self, part: &str, text: &[u8]) -> Result<Vec<&Entry>, Refusal> {
        let raw = tokens(text);
        for (_, hex) in &raw {
            if !self.by_token.contains_key(hex) {
                return Err(Refusal::Foreign { part: part.into() });
            }
        }
        for kind in Escapes::ALL {
            if kind.in_text(text) {
                let decoded = decode(text, kind);
                let found = tokens(&decoded.bytes);
                if found.len() > raw.len() {
                    // The one that stood escaped: ours (named), or not.
                    let escaped = found
                        .iter()
                        .find(|(_, hex)| raw.iter().all(|(_, r)| r != hex))
                        .or(found.first())
                        .and_then(|(_, hex)| self.by_token.get(hex));
                    return Err(match escaped {
                        Some(entry) => Refusal::Escaped {
                            name: entry.name.clone(),
                            part: part.into(),
                        },
                        None => Refusal::Foreign { part: part.into() },
                    });
                }
            }
        }
        Ok(raw.iter().map(|(_, hex)| &self.by_token[hex]).collect())
    }

    fn allowed(&self, entry: &Entry, request: &Request) -> Result<(), Refusal> {
        if !entry
            .hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&request.host))
        {
            return Err(Refusal::Host {
                name: entry.name.clone(),
                host: request.host.clone(),
            });
        }
        if !request.secure {
            return Err(Refusal::Insecure {
                name: entry.name.clone(),
            });
        }
        Ok(())
    }

    /// Substitutes every placeholder of `request` in place, or refuses it
    /// (nothing is substituted then).
    pub fn substitute(&self, request: &mut Request) -> Result<Vec<Use>, Refusal> {
        let undeclared = |e: &Entry, part: &str| Refusal::Undeclared {
            name: e.name.clone(),
            part: part.into(),
        };
        for (part, text) in [
            ("method", request.method.as_bytes()),
            ("authority", request.authority.as_bytes()),
        ] {
            if let Some(e) = self.scan(part, text)?.first() {
                return Err(undeclared(e, part));
            }
        }
        let mut uses = Vec::new();
        let in_path = self.scan("path", request.path.as_bytes())?;
        for entry in &in_path {
            if !entry.injection.path {
                return Err(undeclared(entry, "path"));
            }
            self.allowed(entry, request)?;
        }
        let path = if in_path.is_empty() {
            None
        } else {
            Some(
                self.replace_all_text(&request.path, &mut uses, &request.host, |v| {
                    percent_encoding::utf8_percent_encode(v, PATH_SEGMENT).to_string()
                }),
            )
        };
        let mut headers = request.headers.clone();
        for (name, value) in &mut headers {
            if let Some(e) = self.scan("header names", name.as_bytes())?.first() {
                return Err(undeclared(e, "header names"));
            }
            let part = format!("header {name}");
            let found = self.scan(&part, value)?;
            let Some(entry) = found.first() else { continue };
            if found.len() > 1 {
                return Err(undeclared(entry, &part));
            }
            let token = format!("{PREFIX}{}", tokens(value)[0].1);
            let format = entry
                .injection
                .headers
                .iter()
                .find(|(h, f)| {
                    // Receivers strip a header value's surrounding spaces.
                    h.eq_ignore_ascii_case(name)
                        && f.replacen("{}", &token, 1).trim().as_bytes() == value.trim_ascii()
                })
                .map(|(_, f)| f)
                .ok_or_else(|| undeclared(entry, &part))?;
            self.allowed(entry, request)?;
            *value = format
                .replacen("{}", &entry.value, 1)
                .trim()
                .as_bytes()
                .to_vec();
            uses.push(Use {
                name: entry.name.clone(),
                host: request.host.clone(),
            });
        }
        let mut query = request.query.clone();
        if let Some(q) = &mut query {
            for entry in self.scan("query", q.as_bytes())? {
                if !entry.injection.query {
                    return Err(undeclared(entry, "query"));
                }
                self.allowed(entry, request)?;
            }
            *q = self.replace_all_text(q, &mut uses, &request.host, |v| {
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            });
        }
        let found = self.scan("body", &request.body)?;
        for entry in &found {
            if !entry.injection.body {
                return Err(undeclared(entry, "body"));
            }
            self.allowed(entry, request)?;
        }
        let body = if found.is_empty() {
            None
        } else {
            let kind = BodyKind::of(&request.headers);
            Some(self.replace_all(&request.body, &mut uses, &request.host, |v| kind.encode(v)))
        };
        if let Some(path) = path {
            request.path = path;
        }
        request.headers = headers;
        request.query = query;
        if let Some(body) = body {
            request.body = body;
        }
        Ok(uses)
    }

    /// `text` with each raw token replaced by its value through `encode`;
    /// every other byte as it was (a body need not be UTF-8).
    fn replace_all(
        &self,
        text: &[u8],
        uses: &mut Vec<Use>,
        host: &str,
        encode: impl Fn(&str) -> String,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        let mut at = 0;
        for (start, hex) in tokens(text) {
            let entry = &self.by_token[&hex];
            out.extend_from_slice(&text[at..start]);
            out.extend_from_slice(encode(&entry.value).as_bytes());
            at = start + PREFIX.len() + TOKEN_HEX;
            uses.push(Use {
                name: entry.name.clone(),
                host: host.to_owned(),
            });
        }
        out.extend_from_slice(&text[at..]);
        out
    }

    /// [`replace_all`](Self::replace_all) for a part that is text (the path
    /// and query): the tokens and their encodings are ASCII, so it stays
    /// text.
    fn replace_all_text(
        &self,
        text: &str,
        uses: &mut Vec<Use>,
        host: &str,
        encode: impl Fn(&str) -> String,
    ) -> String {
        String::from_utf8(self.replace_all(text.as_bytes(), uses, host, encode))
            .expect("placeholders and percent-encodings are ASCII")
    }

    /// Whether any placeholder was issued.
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// Names of the secrets whose placeholders stand raw in `text`.
    pub fn names_in(&self, text: &[u8]) -> Vec<String> {
        let mut names: Vec<String> = tokens(text)
            .into_iter()
            .filter_map(|(_, hex)| self.by_token.get(&hex).map(|e| e.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// `text` with each placeholder of this invocation shown as `‹NAME›`,
    /// for records: an operator sees where a secret went, never the value
    /// or a placeholder that could be replayed.
    pub fn shown(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, hex) in tokens(text.as_bytes()) {
            if let Some(entry) = self.by_token.get(&hex)
                && text.is_char_boundary(start)
            {
                out.push_str(&text[at..start]);
                out.push('‹');
                out.push_str(&entry.name);
                out.push('›');
                at = start + PREFIX.len() + TOKEN_HEX;
            }
        }
        out.push_str(&text[at..]);
        out
    }

    /// A response (headers or body) with every value of this invocation
    /// put back as its placeholder.
    pub fn reflect(&self, bytes: &[u8]) -> Vec<u8> {
        self.reflector().replace(bytes)
    }

    /// A streaming [`reflect`](Self::reflect), for response bodies.
    pub fn reflector(&self) -> Reflector {
        let mut patterns = Vec::new();
        for (hex, entry) in &self.by_token {
            let value: &str = &entry.value;
            if value.is_empty() {
                continue;
            }
            let placeholder = format!("{PREFIX}{hex}").into_bytes();
            // As an echo would send it back: raw, in a JSON string, or
            // percent-encoded (either case of hex digit).
            let json = serde_json::to_string(value).unwrap_or_default();
            let json = json[1..json.len().saturating_sub(1).max(1)].to_owned();
            let percent =
                percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                    .to_string();
            let mut forms = vec![
                value.to_owned(),
                json,
                percent.clone(),
                percent.to_ascii_lowercase(),
            ];
            forms.sort();
            forms.dedup();
            for form in forms.into_iter().filter(|f| !f.is_empty()) {
                patterns.push((Zeroizing::new(form.into_bytes()), placeholder.clone()));
            }
        }
        // Longest first, so a form that contains another wins.
        patterns.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        let longest = patterns.first().map_or(0, |(p, _)| p.len());
        Reflector {
            patterns,
            longest,
            pending: Zeroizing::new(Vec::new()),
        }
    }
}

/// Replaces the values of an invocation's credentials with their
/// placeholders in a byte stream, holding back only as many bytes as the
/// longest value could still need.
pub struct Reflector {
    patterns: Vec<(Zeroizing<Vec<u8>>, Vec<u8>)>,
    longest: usize,
    pending: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Reflector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reflector")
            .field("forms", &self.patterns.len())
            .finish_non_exhaustive()
    }
}

impl Reflector {
    /// Whether there is nothing to replace.
    pub fn is_idle(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The leftmost (then longest) match in `text[from..]`.
    fn next_match(&self, text: &[u8], from: usize) -> Option<(usize, usize, usize)> {
        let mut best: Option<(usize, usize, usize)> = None;
        for (i, (pattern, _)) in self.patterns.iter().enumerate() {
            if let Some(at) = memchr::memmem::find(&text[from..], pattern) {
                let at = from + at;
                if best.is_none_or(|(b, _, _)| at < b) {
                    best = Some((at, pattern.len(), i));
                }
            }
        }
        best
    }

    /// Writes `text` up to the end of its last match into `out`, each
    /// match replaced; returns where the rest of `text` starts.
    fn replace_matches(&self, text: &[u8], out: &mut Vec<u8>) -> usize {
        let mut from = 0;
        while let Some((at, len, i)) = self.next_match(text, from) {
            out.extend_from_slice(&text[from..at]);
            out.extend_from_slice(&self.patterns[i].1);
            from = at + len;
        }
        from
    }

    /// A whole text (a header value, a trailer) with every value replaced;
    /// the stream's held-back bytes are left alone.
    pub fn replace(&self, text: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        let from = self.replace_matches(text, &mut out);
        out.extend_from_slice(&text[from..]);
        out
    }

    /// Takes the next chunk; returns what can be passed on now.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.is_idle() {
            return chunk.to_vec();
        }
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.pending.len());
        let from = self.replace_matches(&self.pending, &mut out);
        // A value may begin in the last `longest - 1` bytes and end in the
        // next chunk: those wait.
        let keep_from = self
            .pending
            .len()
            .saturating_sub(self.longest - 1)
            .max(from);
        out.extend_from_slice(&self.pending[from..keep_from]);
        let rest = Zeroizing::new(self.pending[keep_from..].to_vec());
        self.pending = rest;
        out
    }

    /// What is left at the end of the stream.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut *self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "discord-bot-token-0123456789";

    fn creds() -> (Credentials, String) {
        let mut c = Credentials::default();
        let p = c.issue(
            "DISCORD_BOT_TOKEN",
            Zeroizing::new(TOKEN.into()),
            vec!["discord.com".into()],
            Injection {
                headers: vec![("Authorization".into(), "Bot {}".into())],
                ..Injection::default()
            },
        );
        (c, p)
    }

    fn request(headers: Vec<(&str, String)>) -> Request {
        Request {
            method: "POST".into(),
            host: "discord.com".into(),
            authority: "discord.com".into(),
            secure: true,
            path: "/api/v10/channels/1/messages".into(),
            query: None,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.into_bytes()))
                .collect(),
            body: b"{}".to_vec(),
        }
    }

    #[test]
    fn a_declared_header_gets_the_value() {
        let (c, p) = creds();
        let mut r = request(vec![("authorization", format!("Bot {p}"))]);
        let uses = c.substitute(&mut r).unwrap();
        assert_eq!(r.headers[0].1, format!("Bot {TOKEN}").into_bytes());
        assert_eq!(
            uses,
            [Use {
                name: "DISCORD_BOT_TOKEN".into(),
                host: "discord.com".into()
            }]
        );
    }

    #[test]
    fn anywhere_else_is_refused_and_nothing_substituted() {
        let (c, p) = creds();
        let cases: Vec<Request> = vec![
            request(vec![("x-debug", p.clone())]),
            request(vec![("authorization", format!("Basic {p}"))]),
            request(vec![("authorization", format!("Bot {p}{p}"))]),
            request(vec![(p.as_str(), "x".into())]),
            Request {
                authority: format!("{p}@discord.com"),
                ..request(vec![])
            },
            Request {
                path: format!("/x/{p}"),
                ..request(vec![])
            },
            Request {
                query: Some(format!("k={p}")),
                ..request(vec![])
            },
            Request {
                body: format!("{{\"t\":\"{p}\"}}").into_bytes(),
                ..request(vec![])
            },
            // Escaped forms, as the receiver would decode them.
            Request {
                body: p.replace('n', "\\u006e").into_bytes(),
                ..request(vec![])
            },
            Request {
                query: Some(format!("k={}", p.replace('_', "%5F"))),
                ..request(vec![])
            },
            // Upper case is the same token to a case-folding receiver.
            request(vec![("x-debug", p.to_uppercase())]),
        ];
        for mut r in cases {
            let before = r.clone();
            assert!(c.substitute(&mut r).is_err(), "{before:?}");
            assert_eq!(r, before, "a refused request was changed");
        }
    }

    #[test]
    fn the_destination_and_scheme_are_checked() {
        let (c, p) = creds();
        let mut r = request(vec![("authorization", format!("Bot {p}"))]);
        r.host = "evil.example".into();
        assert!(matches!(c.substitute(&mut r), Err(Refusal::Host { .. })));
        let mut r = request(vec![("authorization", format!("Bot {p}"))]);
        r.secure = false;
        assert!(matches!(
            c.substitute(&mut r),
            Err(Refusal::Insecure { .. })
        ));
    }

    #[test]
    fn another_invocations_placeholder_is_refused() {
        let (_, old) = creds();
        let (c, _) = creds();
        let mut r = request(vec![("authorization", format!("Bot {old}"))]);
        assert!(matches!(c.substitute(&mut r), Err(Refusal::Foreign { .. })));
    }

    #[test]
    fn opted_in_query_and_body() {
        let mut c = Credentials::default();
        let p = c.issue(
            "API_KEY",
            Zeroizing::new("key with/space".into()),
            vec!["api.example".into()],
            Injection {
                query: true,
                body: true,
                ..Injection::default()
            },
        );
        let mut r = Request {
            host: "api.example".into(),
            query: Some(format!("key={p}&x=1")),
            body: format!("{{\"key\":\"{p}\"}}").into_bytes(),
            ..request(vec![])
        };
        let uses = c.substitute(&mut r).unwrap();
        assert_eq!(r.query.as_deref(), Some("key=key%20with%2Fspace&x=1"));
        assert_eq!(r.body, b"{\"key\":\"key with/space\"}");
        assert_eq!(uses.len(), 2);
        // In a JSON body, the value is escaped as a JSON string holds it.
        let mut c = Credentials::default();
        let p = c.issue(
            "API_KEY",
            Zeroizing::new("a\"b".into()),
            vec!["api.example".into()],
            Injection {
                body: true,
                path: true,
                ..Injection::default()
            },
        );
        let mut r = Request {
            host: "api.example".into(),
            path: format!("/v1/{p}/x"),
            body: format!("{{\"key\":\"{p}\"}}").into_bytes(),
            ..request(vec![("content-type", "application/json".into())])
        };
        c.substitute(&mut r).unwrap();
        assert_eq!(r.path, "/v1/a%22b/x");
        assert_eq!(r.body, b"{\"key\":\"a\\\"b\"}");
    }

    #[test]
    fn a_streamed_echo_is_reflected_across_chunk_boundaries() {
        let mut c = Credentials::default();
        let value = "s3cr\"t/value-0123456789";
        let p = c.issue(
            "KEY",
            Zeroizing::new(value.into()),
            vec!["api.example".into()],
            Injection::default(),
        );
        let json = serde_json::to_string(value).unwrap();
        let percent =
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let echo = format!(
            "raw={value} json={json} pct={percent} low={}",
            percent.to_lowercase()
        );
        for size in [1, 2, 3, 7, 64, 4096] {
            let mut r = c.reflector();
            let mut out = Vec::new();
            for chunk in echo.as_bytes().chunks(size) {
                out.extend(r.push(chunk));
            }
            out.extend(r.finish());
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains("s3cr"), "chunks of {size}: {out}");
            assert_eq!(out.matches(&p).count(), 4, "chunks of {size}: {out}");
        }
    }

    #[test]
    fn a_body_that_is_not_utf8_keeps_its_bytes() {
        let mut c = Credentials::default();
        let p = c.issue(
            "API_KEY",
            Zeroizing::new("k".into()),
            vec!["api.example".into()],
            Injection {
                body: true,
                ..Injection::default()
            },
        );
        let mut body = vec![0xff, 0x00, 0xc3];
        body.extend_from_slice(p.as_bytes());
        body.extend_from_slice(&[0xfe, 0x80]);
        let mut r = Request {
            host: "api.example".into(),
            body,
            ..request(vec![])
        };
        c.substitute(&mut r).unwrap();
        assert_eq!(r.body, [0xff, 0x00, 0xc3, b'k', 0xfe, 0x80]);
    }

    #[test]
    fn one_placeholder_per_secret_per_invocation() {
        let (mut c, p) = creds();
        let again = c.issue(
            "DISCORD_BOT_TOKEN",
            Zeroizing::new(TOKEN.into()),
            vec!["discord.com".into()],
            Injection::default(),
        );
        assert_eq!(p, again);
        assert_eq!(c.by_token.len(), 1);
    }

    #[test]
    fn records_show_the_name_not_the_placeholder() {
        let (c, p) = creds();
        assert_eq!(c.shown(&format!("Bot {p}")), "Bot ‹DISCORD_BOT_TOKEN›");
        assert_eq!(
            c.names_in(format!("x{p}").as_bytes()),
            ["DISCORD_BOT_TOKEN"]
        );
    }

    #[test]
    fn an_echo_hands_back_only_the_placeholder() {
        let (c, p) = creds();
        let echoed = format!("{{\"authorization\":\"Bot {TOKEN}\"}}");
        let back = c.reflect(echoed.as_bytes());
        assert_eq!(
            back,
            format!("{{\"authorization\":\"Bot {p}\"}}").into_bytes()
        );
        assert!(!format!("{c:?}").contains(TOKEN));
    }
}
