//! The Automation Engine: installed extensions, bot graphs, deploy
//! preflight, and executions.
//!
//! - [`registry`]: installed extensions, by name, version and content hash.
//! - [`graph`]: the bot graph document, its validation and its order.
//! - [`template`]: `{{trigger.*}}` and `{{nodes.ID.output.*}}` in configs.
//! - [`credentials`]: what in a config looks like a credential.
//! - [`executor`]: the [`Engine`](executor::Engine): preflight, deploy, and
//!   executions of a deployed graph.
//! - [`store`]: the engine's SQLite database (`engine.db`, apart from the
//!   vault's).
//! - [`queue`]: the durable run queue `narakim serve` accepts runs into.

pub mod credentials;
pub mod executor;
pub mod graph;
pub mod queue;
pub mod registry;
pub mod store;
pub mod template;

use crate::runtime::ExtensionDescription;

/// Where a graph's `extension` references are looked up.
pub trait ExtensionCatalog {
    /// The installed extension `name` at `version`, or its newest version
    /// when `version` is `None`.
    fn find(&self, name: &str, version: Option<&str>) -> Option<ExtensionDescription>;
}
