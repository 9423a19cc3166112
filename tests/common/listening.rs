//! Where a `narakim serve` child listens: the address in the first line
//! it prints (`… http://127.0.0.1:PORT`). Shared by the tests and the
//! benches (which include this file by path).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::ChildStdout;

/// Reads the first line of `stdout` and parses its address; the line
/// itself when it holds none.
pub fn address(stdout: ChildStdout) -> Result<SocketAddr, String> {
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("reading the first line: {e}"))?;
    line.trim()
        .rsplit("://")
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or(line)
}
