//! Guest stdout and stderr: kept up to a limit, never trapping the guest.
//!
//! Bytes past the limit are counted and dropped; the guest keeps writing as
//! if nothing happened. What is kept is raw (it may hold a secret the guest
//! printed), so it lives in a zeroizing buffer until the invocation ends and
//! the scrubber has seen it.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use zeroize::Zeroizing;

#[derive(Default)]
struct Buffer {
    kept: Zeroizing<Vec<u8>>,
    dropped: u64,
}

/// One captured stream, shared by every handle the guest opens on it.
#[derive(Clone)]
pub(crate) struct Capture {
    buffer: Arc<Mutex<Buffer>>,
    limit: usize,
}

impl Capture {
    pub(crate) fn new(limit: usize) -> Self {
        Capture {
            buffer: Arc::default(),
            limit,
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.limit.saturating_sub(buffer.kept.len());
        let keep = bytes.len().min(room);
        buffer.kept.extend_from_slice(&bytes[..keep]);
        buffer.dropped += (bytes.len() - keep) as u64;
    }

    /// What was kept, and how many bytes were dropped past the limit.
    pub(crate) fn take(&self) -> (Zeroizing<Vec<u8>>, u64) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let kept = std::mem::take(&mut buffer.kept);
        (kept, buffer.dropped)
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(CaptureWriter(self.clone()))
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(CaptureWriter(self.clone()))
    }
}

struct CaptureWriter(Capture);

#[async_trait::async_trait]
impl Pollable for CaptureWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for CaptureWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for CaptureWriter {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
