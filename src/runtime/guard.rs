//! What one execution may reveal, and where each value may go.
//!
//! A value can leave a node without that node reading it: node A reads a
//! token and outputs it reversed, node B reverses it back and sends it. So
//! every sink of every node of an execution (its requests, output, error,
//! logs, stdout and stderr) is checked against every value of the
//! execution's snapshot, not only against the values the node read; and a
//! value may be sent only where every node that declares it allows. The
//! guard holds both: one scrubber over all the snapshot's values (decrypted
//! once per execution) and each secret's strictest binding.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::extension::ExtensionDescription;
use crate::redact::Scrubber;
use crate::vault::{ResolveError, Scope, SecretSnapshot};

/// The execution-wide view of its secrets. Build one per execution and
/// pass it to every [`Runtime::invoke`](super::Runtime::invoke) of it.
pub struct ExecutionGuard {
    /// Whose execution it is (the snapshot's bot, or team), for its share
    /// of the connection pool.
    owner: String,
    scrubber: Arc<Scrubber>,
    /// Secret → hosts: the intersection of the bindings of every node of
    /// the execution that declares it. A secret no node declares is absent:
    /// its value may go nowhere.
    bindings: HashMap<String, HashSet<String>>,
}

impl std::fmt::Debug for ExecutionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutionGuard")
            .field("secrets", &self.scrubber.names())
            .field("bindings", &self.bindings)
            .finish()
    }
}

impl ExecutionGuard {
    /// The guard of an execution of `nodes` (each an extension's stored
    /// description and the node's config) over `snapshot`. Decrypts every
    /// value of the snapshot once; fails closed if one cannot be, since its
    /// value could then not be kept out of anything. A node whose config
    /// does not fit its extension adds no binding (its invocation fails on
    /// that config before it starts).
    pub fn new<'a>(
        snapshot: &SecretSnapshot,
        nodes: impl IntoIterator<Item = (&'a ExtensionDescription, &'a str)>,
    ) -> Result<Self, ResolveError> {
        let scrubber = Scrubber::for_snapshot(snapshot)?;
        let mut bindings: HashMap<String, HashSet<String>> = HashMap::new();
        for (description, config) in nodes {
            let Ok(plan) = description.plan(config) else {
                continue;
            };
            for (name, hosts) in plan.bound {
                match bindings.get_mut(&name) {
                    Some(existing) => existing.retain(|h| hosts.contains(h)),
                    None => {
                        bindings.insert(name, hosts);
                    }
                }
            }
        }
        let owner = match snapshot.scope() {
            Scope::Bot(bot) => bot.clone(),
            Scope::Team(team) => format!("team {team}"),
        };
        Ok(ExecutionGuard {
            owner,
            scrubber,
            bindings,
        })
    }

    /// Whose execution it is: the bot (or `team NAME`).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The scrubber over every value of the execution's snapshot.
    pub fn scrubber(&self) -> &Arc<Scrubber> {
        &self.scrubber
    }

    /// The hosts `secret`'s value may be sent to in this execution.
    pub fn binding(&self, secret: &str) -> Option<&HashSet<String>> {
        self.bindings.get(secret)
    }

    /// Where one invocation may send each value: within the execution's
    /// binding, and within the node's own binding for what it declares.
    pub(crate) fn bound_for(
        &self,
        declared: &HashSet<String>,
        own: &HashMap<String, HashSet<String>>,
    ) -> HashMap<String, HashSet<String>> {
        self.bindings
            .iter()
            .map(|(name, hosts)| {
                let hosts = match (declared.contains(name), own.get(name)) {
                    (true, Some(mine)) => hosts.intersection(mine).cloned().collect(),
                    (true, None) => HashSet::new(),
                    (false, _) => hosts.clone(),
                };
                (name.clone(), hosts)
            })
            .collect()
    }
}
