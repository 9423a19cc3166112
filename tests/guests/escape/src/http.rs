//! Outgoing requests through wasi:http, the way a real client makes them.
//! Every failure is reported as `http error: ...`.

use crate::wasi::http::outgoing_handler;
use crate::wasi::http::types::{
    Fields, FutureIncomingResponse, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::wasi::io::streams::{OutputStream, StreamError};
use serde_json::Value;

/// One request, ready to send.
pub struct Request {
    pub https: bool,
    pub method: Method,
    pub authority: String,
    pub path: String,
    pub headers: Fields,
    pub body: Vec<u8>,
    pub trailers: Option<Fields>,
}

impl Request {
    /// A GET with no headers and no body to `config.authority` (default
    /// `other.example.test`) at `config.path` (default `/x`), over https
    /// unless `config.plain` is `true`.
    pub fn from_config(config: &Value) -> Request {
        Request {
            https: config["plain"] != Value::Bool(true),
            method: Method::Get,
            authority: config["authority"]
                .as_str()
                .unwrap_or("other.example.test")
                .to_string(),
            path: config["path"].as_str().unwrap_or("/x").to_string(),
            headers: Fields::new(),
            body: Vec::new(),
            trailers: None,
        }
    }
}

fn refused(what: &str) -> String {
    format!("http error: {what} refused")
}

/// Fields holding the one header `name: value`.
pub fn header(name: &str, value: &[u8]) -> Result<Fields, String> {
    let fields = Fields::new();
    fields
        .append(name, value)
        .map_err(|e| format!("http error: {e:?}"))?;
    Ok(fields)
}

/// The request's head, and its body still to be written.
fn prepare(
    req: Request,
) -> Result<(OutgoingRequest, OutgoingBody, Vec<u8>, Option<Fields>), String> {
    let request = OutgoingRequest::new(req.headers);
    request
        .set_method(&req.method)
        .map_err(|()| refused("method"))?;
    let scheme = if req.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| refused("scheme"))?;
    request
        .set_authority(Some(&req.authority))
        .map_err(|()| refused("authority"))?;
    request
        .set_path_with_query(Some(&req.path))
        .map_err(|()| refused("path"))?;
    let body = request.body().map_err(|()| refused("body"))?;
    Ok((request, body, req.body, req.trailers))
}

fn handle(request: OutgoingRequest) -> Result<FutureIncomingResponse, String> {
    outgoing_handler::handle(request, None).map_err(|e| format!("http error: {e:?}"))
}

/// Writes `len` bytes produced by `chunk` (at most 4096 at a time), then
/// finishes the body with `trailers`.
fn write_body(
    body: OutgoingBody,
    len: usize,
    chunk: impl Fn(usize, usize) -> Vec<u8>,
    trailers: Option<Fields>,
) -> Result<(), String> {
    {
        let stream: OutputStream = body.write().map_err(|()| refused("body stream"))?;
        let mut at = 0;
        while at < len {
            let n = (len - at).min(4096);
            stream
                .blocking_write_and_flush(&chunk(at, n))
                .map_err(|e| format!("http error: {e:?}"))?;
            at += n;
        }
    }
    OutgoingBody::finish(body, trailers).map_err(|e| format!("http error: {e:?}"))
}

/// Sends a request with a small body: written and finished before the
/// request is handed over.
pub fn start(req: Request) -> Result<FutureIncomingResponse, String> {
    let (request, body, data, trailers) = prepare(req)?;
    write_body(
        body,
        data.len(),
        |at, n| data[at..at + n].to_vec(),
        trailers,
    )?;
    handle(request)
}

/// Sends a request whose body is `size` bytes of `a`, streamed after the
/// request is handed over.
pub fn start_streaming(req: Request, size: usize) -> Result<FutureIncomingResponse, String> {
    let (request, body, _, trailers) = prepare(req)?;
    let future = handle(request)?;
    write_body(body, size, |_, n| vec![b'a'; n], trailers)?;
    Ok(future)
}

/// Waits for the response and reads its body to the end; its status.
pub fn wait(future: FutureIncomingResponse) -> Result<u16, String> {
    let response = loop {
        if let Some(r) = future.get() {
            break r;
        }
        future.subscribe().block();
    };
    let response = response
        .map_err(|()| refused("response (taken twice)"))?
        .map_err(|e| format!("http error: {e:?}"))?;
    let body = response.consume().map_err(|()| refused("response body"))?;
    {
        let stream = body.stream().map_err(|()| refused("response stream"))?;
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

/// Sends `req` and waits for it: `{"status": N}`.
pub fn send(req: Request) -> Result<String, String> {
    let status = wait(start(req)?)?;
    Ok(serde_json::json!({ "status": status }).to_string())
}

/// The kind of an `http error: ...` message: its first word, without payload.
pub fn kind(error: &str) -> String {
    let rest = error.strip_prefix("http error: ").unwrap_or(error);
    rest.split(['(', ' ', '{'])
        .next()
        .unwrap_or(rest)
        .to_string()
}
