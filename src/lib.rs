//! # narakim
//!
//! The host runtime of Narakim's Automation Engine. Bots are graphs of
//! nodes; each node calls an extension, a WebAssembly component written by
//! someone else. narakim keeps the credentials those extensions need in an
//! encrypted vault and hands each extension only the secrets it declared.
//!
//! The data path, and the module that owns each step:
//!
//! - [`vault`]: values sealed with AES-256-GCM under a master key kept apart
//!   from the SQLite database; write-only; per-execution snapshots.
//!
//! - [`redact`]: the streaming scrubber that replaces every revealed value,
//!   raw or encoded, with `[REDACTED:NAME]` in everything an execution emits.
//!
//! The runtime (wasmtime sandbox) and the engine (bot graphs) build on them;
//! the [`service`] (`narakim serve`, the HTTP API) sits on the engine.
//! See `docs/ARCHITECTURE.md`.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

pub mod db;
pub mod engine;
pub mod redact;
pub mod runtime;
pub mod service;
pub mod sqlite;
pub mod standin;
pub mod trigger;
pub mod vault;
