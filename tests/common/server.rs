//! `narakim serve` as a child process on a random loopback port, with its
//! stderr collected, for the tests that drive the real binary over HTTP.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::TestVault;
use super::http::{Response, request};

/// `narakim serve` on a random loopback port, with its stderr collected.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    pub fn start(v: &TestVault, extra: &[&str]) -> Server {
        Server::start_with_env(v, extra, &[])
    }

    /// [`start`](Self::start) with extra environment variables.
    pub fn start_with_env(v: &TestVault, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = v.command();
        cmd.envs(env.iter().copied());
        Server::start_command(cmd, extra)
    }

    /// `cmd serve EXTRA` (`cmd` names the data, the database and the key).
    pub fn start_command(mut cmd: std::process::Command, extra: &[&str]) -> Server {
        cmd.arg("serve");
        // Defaults a test may override.
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        if !extra.contains(&"--drain-seconds") {
            cmd.args(["--drain-seconds", "10"]);
        }
        cmd.args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting narakim serve");
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let addr = super::listening::address(child.stdout.take().unwrap())
            .unwrap_or_else(|line| panic!("no address in {line:?}; log: {}", log.lock().unwrap()));
        Server { child, addr, log }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        self.call_with(method, path, token, body, &[])
    }

    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(auth) = &auth {
            all.push(("Authorization", auth));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        if !body.is_empty() {
            all.push(("Content-Type", "application/json"));
        }
        request(self.addr, method, path, &all, body.as_bytes())
    }

    /// Deploys `graph` to bot `greeter` of team `ops` (the tests' bot)
    /// with `token`; the deploy must succeed.
    #[track_caller]
    pub fn deploy_greeter(&self, token: &str, graph: Value) {
        let r = self.call(
            "PUT",
            "/api/v1/teams/ops/bots/greeter/deployment",
            Some(token),
            Some(graph),
        );
        assert_eq!(r.status, 200, "{r:?}");
    }

    /// Polls the execution at `location` (an API path) with `token` until
    /// it has finished, for at most a minute; returns its final record.
    #[track_caller]
    pub fn wait_finished(&self, token: &str, location: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.call("GET", location, Some(token), None);
            assert_eq!(r.status, 200, "{r:?}");
            let body = r.json();
            if body["finished"] == true {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never finished: {body}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        (status, self.log())
    }

    pub fn kill(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.log()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback HTTP server answering 200 `{}` to everything, counting hits.
pub fn echo(delay: Duration) -> (SocketAddr, Arc<Mutex<usize>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(Mutex::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let counted = counted.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                let mut buf = [0u8; 8192];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                *counted.lock().unwrap() += 1;
                std::thread::sleep(delay);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                );
            });
        }
    });
    (addr, hits)
}
