//! What can go wrong loading an extension or running an invocation. Every
//! invocation error names the extension and the node; none carries a secret
//! value (messages from the guest are scrubbed first).

use std::time::Duration;

use crate::redact::Scrubber;

use super::Captured;
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

    #[error(
        "{path}: describe() did not return within {limit:?}; a description is static data and must not wait on anything"
    )]
    DescribeTimeout { path: String, limit: Duration },

    #[error("{path}: invalid self-description: {reason}")]
    BadDescription { path: String, reason: String },

    #[error("the wasmtime engine could not be set up: {0}")]
    Engine(String),
}

/// Why an invocation failed. Every failure after the guest started keeps
/// what it left behind ([`Captured`]: logs, stdout, stderr, requests),
/// scrubbed, for the audit trail.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("extension {extension}, node {node}: timed out after {limit:?} (the wall-clock limit)")]
    Timeout {
        extension: String,
        node: String,
        limit: Duration,
        captured: Box<Captured>,
    },

    #[error(
        "extension {extension}, node {node}: ran out of memory: linear memory is limited to {limit} bytes"
    )]
    MemoryLimit {
        extension: String,
        node: String,
        limit: usize,
        captured: Box<Captured>,
    },

    #[error(
        "extension {extension}, node {node}: stack overflow (the wasm stack is limited to {limit} bytes)"
    )]
    StackOverflow {
        extension: String,
        node: String,
        limit: usize,
        captured: Box<Captured>,
    },

    #[error(
        "extension {extension}, node {node}: too many live host resources (HTTP fields, requests, streams; the limit is {limit})"
    )]
    ResourceLimit {
        extension: String,
        node: String,
        limit: usize,
        captured: Box<Captured>,
    },

    #[error("extension {extension}, node {node}: trapped: {message}")]
    Trap {
        extension: String,
        node: String,
        message: String,
        captured: Box<Captured>,
    },

    #[error("extension {extension}, node {node}: stopped: {reason}")]
    EgressViolation {
        extension: String,
        node: String,
        reason: String,
        captured: Box<Captured>,
    },

    #[error("extension {extension}, node {node}: stopped at a request limit: {reason}")]
    EgressLimit {
        extension: String,
        node: String,
        reason: String,
        captured: Box<Captured>,
    },

    #[error(
        "extension {extension}, node {node}: output is {size} bytes, over the {limit}-byte limit"
    )]
    OutputTooLarge {
        extension: String,
        node: String,
        size: usize,
        limit: usize,
        captured: Box<Captured>,
    },

    #[error("extension {extension}, node {node}: output is not JSON")]
    OutputNotJson {
        extension: String,
        node: String,
        captured: Box<Captured>,
    },

    #[error(
        "extension {extension}, node {node}: the output holds the value of secret {names}; outputs pass to other nodes and into records, and may hold no secret (redacting it would tell the next node a guess was right), so the node failed"
    )]
    OutputHoldsSecret {
        extension: String,
        node: String,
        names: String,
        captured: Box<Captured>,
    },

    #[error("extension {extension}, node {node}: bad config: {reason}")]
    BadConfig {
        extension: String,
        node: String,
        reason: String,
    },
}

impl InvocationError {
    /// What the guest left behind, when it ran at all.
    pub fn captured(&self) -> Option<&Captured> {
        match self {
            InvocationError::Timeout { captured, .. }
            | InvocationError::MemoryLimit { captured, .. }
            | InvocationError::StackOverflow { captured, .. }
            | InvocationError::ResourceLimit { captured, .. }
            | InvocationError::Trap { captured, .. }
            | InvocationError::EgressViolation { captured, .. }
            | InvocationError::EgressLimit { captured, .. }
            | InvocationError::OutputTooLarge { captured, .. }
            | InvocationError::OutputNotJson { captured, .. }
            | InvocationError::OutputHoldsSecret { captured, .. } => Some(captured),
            InvocationError::BadConfig { .. } => None,
        }
    }

    /// The guest's scrubbed stderr, when the failure left one.
    pub fn stderr(&self) -> &str {
        self.captured().map_or("", |c| c.stderr.as_str())
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
    captured: Box<Captured>,
) -> InvocationError {
    // The resource table's own error, however deep in the chain.
    let table_full = format!("{error:#}").contains("resource table has no free keys");
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => InvocationError::Timeout {
            extension,
            node,
            limit: limits.timeout,
            captured,
        },
        Some(wasmtime::Trap::StackOverflow) => InvocationError::StackOverflow {
            extension,
            node,
            limit: limits.stack_bytes,
            captured,
        },
        _ if memory_denied => InvocationError::MemoryLimit {
            extension,
            node,
            limit: limits.memory_bytes,
            captured,
        },
        _ if table_full => InvocationError::ResourceLimit {
            extension,
            node,
            limit: limits.host_resources,
            captured,
        },
        // The trap itself; the wasm backtrace (function indexes) helps no
        // operator, and a panic's message is in the scrubbed stderr.
        trap => InvocationError::Trap {
            extension,
            node,
            message: super::egress::clip(
                &scrubber.scrub_str(&match trap {
                    Some(trap) => trap.to_string(),
                    None => format!("{:#}", error.root_cause()),
                }),
                4096,
            ),
            captured,
        },
    }
}
