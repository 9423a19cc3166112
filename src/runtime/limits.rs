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
