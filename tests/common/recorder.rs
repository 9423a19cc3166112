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
    /// Connections open right now, and the most ever open at once.
    open: Arc<Mutex<(usize, usize)>>,
}

impl Recorder {
    pub fn start(silent: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let open: Arc<Mutex<(usize, usize)>> = Arc::default();
        let (record, counting) = (seen.clone(), open.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let record = record.clone();
                let counting = counting.clone();
                {
                    let mut n = counting.lock().unwrap();
                    n.0 += 1;
                    n.1 = n.1.max(n.0);
                }
                std::thread::spawn(move || {
                    let _closed = Closed(counting);
                    if silent {
                        // Until the client hangs up.
                        let mut byte = [0u8; 4096];
                        while matches!(conn.read(&mut byte), Ok(n) if n > 0) {}
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
        Recorder { port, seen, open }
    }

    /// The most connections that were ever open at once.
    pub fn most_open(&self) -> usize {
        self.open.lock().unwrap().1
    }

    /// Connections open right now.
    pub fn open_now(&self) -> usize {
        self.open.lock().unwrap().0
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

/// Counts a connection closed when its thread ends.
struct Closed(Arc<Mutex<(usize, usize)>>);

impl Drop for Closed {
    fn drop(&mut self) {
        self.0.lock().unwrap().0 -= 1;
    }
}

/// The length of the first complete request in `buf`, if there is one.
pub fn request_len(buf: &[u8]) -> Option<usize> {
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
