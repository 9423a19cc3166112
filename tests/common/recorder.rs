//! A loopback HTTP/1.1 server that records every request it receives, raw
//! (head and body), and answers `200 {}`; or, when `silent`, accepts and
//! never answers. For checking what actually left the sandbox.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Recorder {
    pub port: u16,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    pub fn start(silent: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let record = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let record = record.clone();
                std::thread::spawn(move || {
                    if silent {
                        std::thread::sleep(Duration::from_secs(600));
                        return;
                    }
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 16384];
                    loop {
                        while request_len(&buf).is_none() {
                            match conn.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let len = request_len(&buf).unwrap();
                        let request: Vec<u8> = buf.drain(..len).collect();
                        record.lock().unwrap().push(request);
                        if conn
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Recorder { port, seen }
    }

    /// `--upstream` argument mapping `host` here.
    pub fn upstream(&self, host: &str) -> String {
        format!("{host}=http://127.0.0.1:{}", self.port)
    }

    /// Every request received so far, raw.
    pub fn requests(&self) -> Vec<Vec<u8>> {
        self.seen.lock().unwrap().clone()
    }
}

/// The length of the first complete request in `buf`, if there is one.
fn request_len(buf: &[u8]) -> Option<usize> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let length = String::from_utf8_lossy(&buf[..end])
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    (buf.len() >= end + 4 + length).then_some(end + 4 + length)
}
