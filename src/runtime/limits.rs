//! The bounds every invocation runs within, and the store limiter that
//! enforces the memory and table ones.

use std::time::Duration;

/// Limits of one invocation. Every field has a default; each breach is its
/// own error naming the extension and the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time for one invocation (epoch interruption inside wasm,
    /// a tokio timeout around host calls). Default 30 s.
    pub timeout: Duration,
    /// Linear memory per memory. Default 64 MiB.
    pub memory_bytes: usize,
    /// Elements per table. Default 20,000.
    pub table_elements: usize,
    /// Core instances, tables and memories per store. Default 64 each.
    pub instances: usize,
    /// Captured stdout and stderr, each; past it bytes are dropped and
    /// counted, and the guest is never trapped. Default 1 MiB.
    pub capture_bytes: usize,
    /// Size of the returned output or error. Default 1 MiB.
    pub output_bytes: usize,
    /// Wasm stack. Default 512 KiB.
    pub stack_bytes: usize,
    /// Invocations that can be live at once (slots of the pooling
    /// allocator). Default 256.
    pub pooled_instances: u32,
    /// Live host resources of one invocation (HTTP fields, requests,
    /// bodies, streams, pollables). Default 1,000.
    pub host_resources: usize,
    /// Bytes one HTTP fields resource (a header map) may hold, in the
    /// host's own accounting. Default 32 KiB.
    pub field_bytes: usize,
    /// Log calls kept per invocation; past it they are counted. Default
    /// 10,000 (each also counts 64 bytes against `capture_bytes`).
    pub log_entries: usize,
    /// Outgoing requests one invocation may have waiting for a response
    /// at once. Default 16.
    pub concurrent_requests: usize,
    /// Bytes of request bodies one invocation may have buffered in the
    /// host at once (each request is checked whole before it leaves).
    /// Default 16 MiB.
    pub request_body_bytes: usize,
    /// Requests one bot may have in flight across the whole process (all
    /// its invocations); more wait their turn. Default 1,024 (sized for
    /// the usual 20,000-descriptor limit; lower it with a lower one).
    pub bot_requests: usize,
    /// Requests in flight to one host across the whole process (all bots),
    /// so a stalled host cannot hold every connection; more wait their
    /// turn. Default 1,024.
    pub host_requests: usize,
    /// Bytes one execution may store in its records (outputs, errors,
    /// logs, stdout, stderr, requests), whatever its number of nodes.
    /// Default 16 MiB.
    pub execution_record_bytes: usize,
    /// How long the values a bot's execution decrypted are kept, in this
    /// process only, for its next execution while its secrets are
    /// unchanged (any write or rotation makes the next one decrypt
    /// afresh). Zero: every execution decrypts its own. Default 30 s.
    pub decrypted_idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(30),
            memory_bytes: 64 << 20,
            table_elements: 20_000,
            instances: 64,
            capture_bytes: 1 << 20,
            output_bytes: 1 << 20,
            stack_bytes: 512 << 10,
            pooled_instances: 256,
            host_resources: 1_000,
            field_bytes: 32 << 10,
            log_entries: 10_000,
            concurrent_requests: 16,
            request_body_bytes: 16 << 20,
            bot_requests: 1024,
            host_requests: 1024,
            execution_record_bytes: 16 << 20,
            decrypted_idle: Duration::from_secs(30),
        }
    }
}

/// Enforces [`Limits`] on one store, remembering whether it refused memory
/// so a resulting trap can be reported as the memory limit.
pub(crate) struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    instances: usize,
    memory_denied: bool,
}

impl Limiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        Limiter {
            memory_bytes: limits.memory_bytes,
            table_elements: limits.table_elements,
            instances: limits.instances,
            memory_denied: false,
        }
    }

    pub(crate) fn memory_denied(&self) -> bool {
        self.memory_denied
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_bytes;
        self.memory_denied |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.instances
    }

    fn memories(&self) -> usize {
        self.instances
    }
}
