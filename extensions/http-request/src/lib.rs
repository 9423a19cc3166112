//! `http-request`: one HTTP request to the URL in its config, optionally
//! authenticated with a secret the user names.
//!
//! Config: `{"method": "GET", "url": "https://…", "headers": {"name":
//! "value"}, "body": "text" or any JSON, "auth": {"secret": "NAME", "header":
//! "Authorization", "scheme": "Bearer"}}`; only `url` is required. The URL's
//! host is allowed for the invocation (host field `/url`); the secret named
//! by `/auth/secret` is declared for it (secret field, any allowed host) as
//! a credential: the host puts its value into the header `auth.header`
//! (default `Authorization`) after `auth.scheme` (default `Bearer`).
//! Output: `{"status", "headers", "body"}`, the body parsed when it is JSON.

use std::collections::BTreeMap;

use narakim_extension::http::{self, Method, Request, Url};
use narakim_extension::{
    Description, Error, Extension, Injection, credential, export_extension, info,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    method: Option<String>,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    auth: Option<Auth>,
}

#[derive(Deserialize)]
struct Auth {
    secret: String,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    scheme: Option<String>,
}

#[derive(Serialize)]
struct Output {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Value,
}

/// Header names the runtime sets itself.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-connection",
    "http2-settings",
];

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn check_header(name: &str, value: &str) -> Result<(), Error> {
    if !valid_header_name(name) {
        return Err(Error::new(format!(
            "config: {name:?} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~)"
        )));
    }
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(Error::new(format!(
            "config: header {name} is set by the runtime and cannot be given"
        )));
    }
    if value.contains(['\r', '\n', '\0']) {
        return Err(Error::new(format!(
            "config: the value of header {name} contains a line break or NUL"
        )));
    }
    Ok(())
}

fn valid_secret_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes[0].is_ascii_uppercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        essence == "application/json" || essence.ends_with("+json")
    })
}

struct HttpRequest;

impl Extension for HttpRequest {
    type Config = Config;
    type Input = Value;
    type Output = Output;

    fn describe() -> Description {
        Description::new(
            "http-request",
            env!("CARGO_PKG_VERSION"),
            "Sends one HTTP request to the URL in its config, optionally with a secret as credentials",
        )
        // The user names the header and the scheme; the host reads them
        // from the same config, so it substitutes only where they say.
        .credential_field(
            "/auth/secret",
            &[],
            Injection::header("{/auth/header|Authorization}", "{/auth/scheme|Bearer} {}"),
        )
        .host_field("/url")
    }

    fn run(config: Config, _input: Value) -> Result<Output, Error> {
        let method_name = config.method.as_deref().unwrap_or("GET");
        let method = Method::parse(method_name)
            .filter(|m| *m != Method::Options)
            .ok_or_else(|| {
                Error::new(format!(
                    "config: method {method_name:?} is not one of GET, POST, PUT, PATCH, DELETE, HEAD"
                ))
            })?;
        let url = Url::parse(&config.url).map_err(|e| Error::new(format!("config: url: {e}")))?;
        for (name, value) in &config.headers {
            check_header(name, value)?;
        }
        let has_header = |name: &str| config.headers.keys().any(|n| n.eq_ignore_ascii_case(name));

        let auth = match &config.auth {
            None => None,
            Some(auth) => {
                if !valid_secret_name(&auth.secret) {
                    return Err(Error::new(format!(
                        "config: auth.secret {:?} is not a secret name (like API_TOKEN: A-Z, 0-9 and _, starting with a letter)",
                        auth.secret
                    )));
                }
                let header = auth
                    .header
                    .clone()
                    .unwrap_or_else(|| "Authorization".to_owned());
                check_header(&header, "")?;
                if has_header(&header) {
                    return Err(Error::new(format!(
                        "config: header {header} is given in both headers and auth; keep one"
                    )));
                }
                let scheme = auth.scheme.clone().unwrap_or_else(|| "Bearer".to_owned());
                if scheme.contains(['\r', '\n', '\0']) {
                    return Err(Error::new(
                        "config: auth.scheme contains a line break or NUL",
                    ));
                }
                if scheme.contains(['{', '}']) {
                    return Err(Error::new("config: auth.scheme may not contain braces"));
                }
                Some((credential(&auth.secret)?, header, scheme))
            }
        };

        let (body, json_body) = match &config.body {
            None | Some(Value::Null) => (Vec::new(), false),
            Some(Value::String(text)) => (text.clone().into_bytes(), false),
            Some(other) => (other.to_string().into_bytes(), true),
        };
        if !body.is_empty() && matches!(method, Method::Get | Method::Head) {
            return Err(Error::new(format!(
                "config: a {method} request cannot have a body"
            )));
        }

        let build = || {
            let mut request = Request::new(method, config.url.clone());
            for (name, value) in &config.headers {
                request = request.header(name, value);
            }
            if json_body && !has_header("content-type") {
                request = request.header("Content-Type", "application/json");
            }
            if let Some((credential, header, scheme)) = &auth {
                request = request.credential(header, &format!("{scheme} {{}}"), credential);
            }
            request.body(body.clone())
        };
        info!("{method} {}", url.host);
        let response = http::send_with_retry(build, http::DEFAULT_MAX_WAIT)?;

        match response.status {
            401 | 403 if auth.is_some() => {
                response.error_for_status(config.auth.as_ref().map(|a| a.secret.as_str()))?
            }
            429 => response.error_for_status(None)?,
            500.. => response.error_for_status(None)?,
            _ => {}
        }

        let mut headers = BTreeMap::new();
        for (name, value) in &response.headers {
            headers
                .entry(name.to_ascii_lowercase())
                .and_modify(|v: &mut String| {
                    v.push_str(", ");
                    v.push_str(value);
                })
                .or_insert_with(|| value.clone());
        }
        let text = response.text();
        let body = if is_json(response.header("content-type")) {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        } else {
            Value::String(text)
        };
        Ok(Output {
            status: response.status,
            headers,
            body,
        })
    }
}

export_extension!(HttpRequest);
