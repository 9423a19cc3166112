//! What can go wrong loading an extension or running an invocation. Every
//! invocation error names the extension and the node; none carries a secret
//! value (messages from the guest are scrubbed first).

use std::time::Duration;

use crate::redact::Scrubber;

use super::limits::Limits;

/// Why a component could not be loaded as an extension.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{path} is not a WebAssembly component ({reason}); build the extension for the wasm32-wasip2 target, which produces a component"
    )]
    NotAComponent { path: String, reason: String },

    #[error(
        "{path} is not a narakim extension: {reason}. Extensions target the `narakim:extension/extension` world in wit/"
    )]
    WrongWorld { path: String, reason: String },

    #[error("{path}: describe() failed: {reason}")]
    Describe { path: String, reason: String },

    #[error("{path}: invalid self-description: {reason}")]
    BadDescription { path: String, reason: String },

    #[error("the wasmtime engine could not be set up: {0}")]
    Engine(String),
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("extension {extension}, node {node}: timed out after {limit:?} (the wall-clock limit)")]
    Timeout {
        extension: String,
        node: String,
        limit: Duration,
        stderr: String,
    },

    #[error(
        "extension {extension}, node {node}: ran out of memory: linear memory is limited to {limit} bytes"
    )]
    MemoryLimit {
        extension: String,
        node: String,
        limit: usize,
        stderr: String,
    },

    #[error(
        "extension {extension}, node {node}: stack overflow (the wasm stack is limited to {limit} bytes)"
    )]
    StackOverflow {
        extension: String,
        node: String,
        limit: usize,
        stderr: String,
    },

    #[error("extension {extension}, node {node}: trapped: {message}")]
    Trap {
        extension: String,
        node: String,
        message: String,
        stderr: String,
    },

    #[error(
        "extension {extension}, node {node}: output is {size} bytes, over the {limit}-byte limit"
    )]
    OutputTooLarge {
        extension: String,
        node: String,
        size: usize,
        limit: usize,
    },

    #[error("extension {extension}, node {node}: output is not JSON")]
    OutputNotJson { extension: String, node: String },

    #[error("extension {extension}, node {node}: bad config: {reason}")]
    BadConfig {
        extension: String,
        node: String,
        reason: String,
    },
}

impl InvocationError {
    /// The guest's scrubbed stderr, when the failure left one.
    pub fn stderr(&self) -> &str {
        match self {
            InvocationError::Timeout { stderr, .. }
            | InvocationError::MemoryLimit { stderr, .. }
            | InvocationError::StackOverflow { stderr, .. }
            | InvocationError::Trap { stderr, .. } => stderr,
            _ => "",
        }
    }
}

/// Turns a wasmtime error from instantiate-or-call into the error that says
/// which limit was hit, or the (scrubbed) trap.
pub(crate) fn classify(
    error: wasmtime::Error,
    extension: String,
    node: String,
    limits: &Limits,
    memory_denied: bool,
    scrubber: &std::sync::Arc<Scrubber>,
    stderr: String,
) -> InvocationError {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => InvocationError::Timeout {
            extension,
            node,
            limit: limits.timeout,
            stderr,
        },
        Some(wasmtime::Trap::StackOverflow) => InvocationError::StackOverflow {
            extension,
            node,
            limit: limits.stack_bytes,
            stderr,
        },
        _ if memory_denied => InvocationError::MemoryLimit {
            extension,
            node,
            limit: limits.memory_bytes,
            stderr,
        },
        // The trap itself; the wasm backtrace (function indexes) helps no
        // operator, and a panic's message is in the scrubbed stderr.
        trap => InvocationError::Trap {
            extension,
            node,
            message: scrubber.scrub_str(&match trap {
                Some(trap) => trap.to_string(),
                None => format!("{:#}", error.root_cause()),
            }),
            stderr,
        },
    }
}
