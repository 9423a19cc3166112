//! The bot graph: a document of nodes, its validation, and its order.
//!
//! A graph is JSON or TOML. Each node names an extension (`name` or
//! `name@version`), gives it a config (which may use
//! [templates](super::template)), and lists the nodes it depends on. A
//! node runs as soon as every node it depends on has finished, and may use
//! their outputs.
//!
//! [`Graph::validate`] reports every problem at once, each naming its node,
//! so a user fixes a graph in one pass rather than one error per deploy.
//!
//! ```
//! use narakim::engine::graph::{Format, Graph};
//!
//! let graph = Graph::parse(r#"
//!     [[nodes]]
//!     id = "ask"
//!     extension = "openrouter-chat@0.1.0"
//!     config = { prompt = "{{trigger.text}}" }
//!
//!     [[nodes]]
//!     id = "post"
//!     extension = "discord-send-message"
//!     depends_on = ["ask"]
//!     config = { content = "{{nodes.ask.output.text}}" }
//! "#, None).unwrap();
//! assert_eq!(graph.nodes[1].depends_on, ["ask"]);
//! assert_eq!(graph.nodes[0].extension.version.as_deref(), Some("0.1.0"));
//! let same = Graph::parse(&graph.canonical_json(), Some(Format::Json)).unwrap();
//! assert_eq!(same.version(), graph.version());
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ExtensionCatalog;
use super::credentials::{self, CredentialFinding};
use super::template::{self, Source, Template, TemplateError};
use crate::runtime::ExtensionDescription;
use crate::trigger::Trigger;

/// How an extension is installed, shown where one is missing.
const INSTALL_HINT: &str = "`narakim extension install PATH.wasm`";

/// A graph document's syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Toml,
}

impl Format {
    /// The format a file name says (`.json`, `.toml`), if it says one.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?;
        if ext.eq_ignore_ascii_case("json") {
            Some(Format::Json)
        } else if ext.eq_ignore_ascii_case("toml") {
            Some(Format::Toml)
        } else {
            None
        }
    }

    /// JSON when the document starts with `{`, TOML otherwise (a TOML
    /// document cannot start with `{`).
    pub fn sniff(text: &str) -> Format {
        if text
            .trim_start_matches('\u{feff}')
            .trim_start()
            .starts_with('{')
        {
            Format::Json
        } else {
            Format::Toml
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "JSON",
            Format::Toml => "TOML",
        })
    }
}

/// A bot graph as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Graph {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Missing is allowed here so validation can say what to do about it.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// What starts the bot from outside (see [`crate::trigger`]). Left out
    /// of the canonical form when empty, so graphs without triggers keep
    /// the versions they had.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
}

/// One step of a graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub id: String,
    pub extension: ExtensionRef,
    #[serde(default = "empty_object")]
    pub config: Value,
    #[serde(default)]
    pub depends_on: Vec<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// `name` or `name@version`: which installed extension a node runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExtensionRef {
    pub name: String,
    /// `None`: the newest installed version, resolved at validation.
    pub version: Option<String>,
}

impl FromStr for ExtensionRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, version) = match s.split_once('@') {
            Some((name, version)) => (name, Some(version)),
            None => (s, None),
        };
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let version_ok = version.is_none_or(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
        });
        if !name_ok || !version_ok {
            // Echo a typo, but not what may be a pasted credential.
            let shown = if s.len() <= 80 && credentials::kinds_in(s).is_empty() {
                format!("{s:?}")
            } else {
                "(not shown: it may contain a value)".to_owned()
            };
            return Err(format!(
                "extension {shown} must be NAME or NAME@VERSION (NAME is a-z, 0-9 and -), for example \"discord-send-message@0.1.0\""
            ));
        }
        Ok(ExtensionRef {
            name: name.to_owned(),
            version: version.map(str::to_owned),
        })
    }
}

impl TryFrom<String> for ExtensionRef {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<ExtensionRef> for String {
    fn from(r: ExtensionRef) -> String {
        r.to_string()
    }
}

impl fmt::Display for ExtensionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Why a graph could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("cannot read the graph {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin} is not a valid {format} graph: {}{message}", at_position(*position))]
    Parse {
        /// The file, or "the graph" when parsed from text.
        origin: String,
        format: Format,
        /// 1-based line and column, when the parser knows them.
        position: Option<(usize, usize)>,
        message: String,
    },
    #[error("{}", problems_text(.0))]
    Invalid(Vec<GraphProblem>),
}

fn at_position(position: Option<(usize, usize)>) -> String {
    match position {
        Some((line, column)) => format!("line {line}, column {column}: "),
        None => String::new(),
    }
}

fn problems_text(problems: &[GraphProblem]) -> String {
    let mut s = match problems.len() {
        1 => "the graph has 1 problem:".to_owned(),
        n => format!("the graph has {n} problems:"),
    };
    for p in problems {
        s.push_str("\n  - ");
        s.push_str(&p.to_string());
    }
    s
}

/// One thing wrong with a graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphProblem {
    #[error("the graph has no nodes; add at least one under \"nodes\"")]
    NoNodes,
    #[error(
        "node id {id:?} is not valid: ids are 1-64 characters of a-z, A-Z, 0-9, _ and -, for example \"ask-llm\""
    )]
    BadNodeId { id: String },
    #[error("node id \"{id}\" is used by {count} nodes; ids must be unique")]
    DuplicateNodeId { id: String, count: usize },
    #[error("node \"{node}\": extension \"{extension}\" is not installed; {}", install_hint(extension, newest_installed.as_deref()))]
    UnknownExtension {
        node: String,
        extension: ExtensionRef,
        /// The newest installed version of that name, if any.
        newest_installed: Option<String>,
    },
    #[error(
        "node \"{node}\": depends_on names \"{dependency}\", which is not a node of this graph"
    )]
    UnknownDependency { node: String, dependency: String },
    #[error("node \"{node}\": depends_on names the node itself")]
    SelfDependency { node: String },
    #[error(
        "the dependencies form a cycle: {} (each node depends on the next); remove one of these dependencies",
        path.join(" -> ")
    )]
    Cycle {
        /// The cycle, first node repeated at the end.
        path: Vec<String>,
    },
    #[error("node \"{node}\": {error}")]
    Template { node: String, error: TemplateError },
    #[error(
        "node \"{node}\": config {pointer} refers to node \"{target}\", which is not a node of this graph"
    )]
    UnknownNodeReference {
        node: String,
        pointer: String,
        target: String,
    },
    #[error(
        "node \"{node}\": config {pointer} uses the output of node \"{target}\", which is not among its dependencies; add \"{target}\" to depends_on of \"{node}\""
    )]
    NotAnAncestor {
        node: String,
        pointer: String,
        target: String,
    },
    #[error(
        "node \"{node}\": config {pointer} uses the node's own output; a node can only use outputs of the nodes it depends on"
    )]
    SelfReference { node: String, pointer: String },
    #[error(
        "node \"{node}\": config must be an object (a JSON object or a TOML table), not {found}"
    )]
    ConfigNotObject { node: String, found: &'static str },
    #[error(
        "node \"{node}\": config {pointer} names a secret, so it must be a secret's name written out, such as \"MY_API_KEY\", not a template"
    )]
    TemplateInSecretField { node: String, pointer: String },
    #[error(
        "node \"{node}\": config {pointer} is a URL whose scheme and host must be written out; templates may only follow them, for example \"https://api.example.com/{{{{trigger.path}}}}\""
    )]
    TemplateInHost { node: String, pointer: String },
    #[error(
        "node \"{node}\": config {pointer} is a template, and it holds {field}, which {what}; a template there would let the trigger or another node's output choose it. Write the object out, with templates only in its other fields"
    )]
    TemplateAboveField {
        node: String,
        pointer: String,
        field: String,
        what: &'static str,
    },
    #[error("node \"{node}\": config does not fit extension \"{extension}\": {message}")]
    BadConfig {
        node: String,
        extension: String,
        message: String,
    },
    #[error("trigger {trigger}: {message}")]
    Trigger {
        /// The trigger's id, quoted, or its position when the id is bad.
        trigger: String,
        message: String,
    },
    #[error("trigger id \"{id}\" is used by {count} triggers; ids must be unique")]
    DuplicateTriggerId { id: String, count: usize },
}

/// Each trigger's own problems, and ids used twice.
fn check_triggers(triggers: &[Trigger], problems: &mut Vec<GraphProblem>) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (i, trigger) in triggers.iter().enumerate() {
        *counts.entry(trigger.id()).or_default() += 1;
        let name = if template::is_valid_node_id(trigger.id()) {
            format!("{:?}", trigger.id())
        } else {
            format!("#{}", i + 1)
        };
        for message in trigger.problems() {
            problems.push(GraphProblem::Trigger {
                trigger: name.clone(),
                message,
            });
        }
    }
    let mut reported = HashSet::new();
    for trigger in triggers {
        let count = counts[trigger.id()];
        if count > 1 && template::is_valid_node_id(trigger.id()) && reported.insert(trigger.id()) {
            problems.push(GraphProblem::DuplicateTriggerId {
                id: trigger.id().to_owned(),
                count,
            });
        }
    }
}

fn install_hint(extension: &ExtensionRef, newest: Option<&str>) -> String {
    match (&extension.version, newest) {
        (Some(wanted), Some(newest)) => format!(
            "installed versions: {newest} (the newest); use \"{}@{newest}\", or install {wanted} with {INSTALL_HINT}",
            extension.name
        ),
        _ => format!("install it with {INSTALL_HINT}"),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Graph {
    /// Parses a graph in `format`, or sniffs it when `None` (see
    /// [`Format::sniff`]).
    pub fn parse(text: &str, format: Option<Format>) -> Result<Graph, GraphError> {
        Self::parse_named(text, format, "the graph")
    }

    /// Reads and parses the file at `path`, its format told by its
    /// extension or else sniffed.
    pub fn load(path: &Path) -> Result<Graph, GraphError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| GraphError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse_named(&text, Format::from_path(path), &shown)
    }

    fn parse_named(text: &str, format: Option<Format>, origin: &str) -> Result<Graph, GraphError> {
        let format = format.unwrap_or_else(|| Format::sniff(text));
        let parse_error = |position, message| GraphError::Parse {
            origin: origin.to_owned(),
            format,
            position,
            message,
        };
        match format {
            Format::Json => serde_json::from_str(text).map_err(|e| {
                let (line, column) = (e.line(), e.column());
                // serde_json appends the position; it is shown apart.
                let full = e.to_string();
                let suffix = format!(" at line {line} column {column}");
                let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
                parse_error((line > 0).then_some((line, column)), message)
            }),
            Format::Toml => toml::from_str(text).map_err(|e| {
                // Only the message: the full form quotes the source line,
                // which may hold a value that should not end up in logs.
                let position = e.span().map(|span| line_column(text, span.start));
                parse_error(position, e.message().trim_end().to_owned())
            }),
        }
    }

    /// The graph as JSON with object keys sorted and no whitespace: equal
    /// graphs give equal text whatever their source format or key order,
    /// so it can be stored and hashed into a version.
    pub fn canonical_json(&self) -> String {
        let value = serde_json::to_value(self)
            .expect("a graph is strings and JSON values, which always serialize");
        let mut out = String::new();
        write_canonical(&value, &mut out);
        out
    }

    /// Hex SHA-256 of [`Graph::canonical_json`]: the graph's version.
    pub fn version(&self) -> String {
        Sha256::digest(self.canonical_json().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Everything in the graph that looks like a credential: in each
    /// node's config (findings name the node) and in the graph's name and
    /// description. Deploy refuses a graph with any; see
    /// [`credentials::refusal_message`].
    pub fn credential_findings(&self) -> Vec<CredentialFinding> {
        let mut findings = Vec::new();
        for (pointer, text) in [("/name", &self.name), ("/description", &self.description)] {
            if let Some(text) = text {
                findings.extend(
                    credentials::looks_like_credentials(&Value::String(text.clone()))
                        .into_iter()
                        .map(|f| CredentialFinding {
                            pointer: pointer.to_owned(),
                            ..f
                        }),
                );
            }
        }
        for node in &self.nodes {
            findings.extend(
                credentials::looks_like_credentials(&node.config)
                    .into_iter()
                    .map(|f| CredentialFinding {
                        node: Some(node.id.clone()),
                        ..f
                    }),
            );
        }
        for (i, trigger) in self.triggers.iter().enumerate() {
            let value = serde_json::to_value(trigger).unwrap_or(Value::Null);
            findings.extend(
                credentials::looks_like_credentials(&value)
                    .into_iter()
                    .map(|f| CredentialFinding {
                        pointer: format!("/triggers/{i}{}", f.pointer),
                        ..f
                    }),
            );
        }
        findings
    }

    /// Checks the graph against the installed extensions. Every problem is
    /// reported, each naming its node, in document order of the nodes.
    pub fn validate(&self, catalog: &dyn ExtensionCatalog) -> Result<ValidatedGraph, GraphError> {
        let mut problems = Vec::new();
        if self.nodes.is_empty() {
            problems.push(GraphProblem::NoNodes);
        }

        // Ids: valid and unique. Later duplicates resolve to the first.
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !template::is_valid_node_id(&node.id) {
                problems.push(GraphProblem::BadNodeId {
                    id: node.id.clone(),
                });
            }
            index.entry(&node.id).or_insert(i);
            *counts.entry(&node.id).or_default() += 1;
        }
        let mut reported = HashSet::new();
        for node in &self.nodes {
            let count = counts[node.id.as_str()];
            if count > 1 && reported.insert(&node.id) {
                problems.push(GraphProblem::DuplicateNodeId {
                    id: node.id.clone(),
                    count,
                });
            }
        }

        // Dependencies: edges to nodes that exist, not to itself.
        let mut deps: Vec<Vec<usize>> = Vec::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            let mut mine = Vec::new();
            for dep in &node.depends_on {
                match index.get(dep.as_str()) {
                    None => problems.push(GraphProblem::UnknownDependency {
                        node: node.id.clone(),
                        dependency: dep.clone(),
                    }),
                    Some(_) if *dep == node.id => problems.push(GraphProblem::SelfDependency {
                        node: node.id.clone(),
                    }),
                    Some(&d) if d != i && !mine.contains(&d) => mine.push(d),
                    Some(_) => {}
                }
            }
            deps.push(mine);
        }
        let (order, cycles) = topological_order(&deps);
        for cycle in cycles {
            problems.push(GraphProblem::Cycle {
                path: cycle.iter().map(|&i| self.nodes[i].id.clone()).collect(),
            });
        }

        // Each node: its extension and its config.
        let mut resolved = Vec::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            let description = catalog.find(&node.extension.name, node.extension.version.as_deref());
            if description.is_none() {
                let newest_installed = node
                    .extension
                    .version
                    .as_ref()
                    .and_then(|_| catalog.find(&node.extension.name, None))
                    .map(|d| d.version);
                problems.push(GraphProblem::UnknownExtension {
                    node: node.id.clone(),
                    extension: node.extension.clone(),
                    newest_installed,
                });
            }
            let ancestors = ancestors(i, &deps);
            check_config(
                node,
                description.as_ref(),
                &|target| index.contains_key(target),
                &|target| index.get(target).is_some_and(|t| ancestors.contains(t)),
                &mut problems,
            );
            resolved.push(description);
        }

        check_triggers(&self.triggers, &mut problems);

        if !problems.is_empty() {
            return Err(GraphError::Invalid(problems));
        }
        let mut nodes: Vec<ValidatedNode> = self
            .nodes
            .iter()
            .zip(resolved)
            .zip(&deps)
            .map(|((node, extension), deps)| ValidatedNode {
                node: node.clone(),
                extension: extension.expect("a missing extension is a problem above"),
                dependencies: deps.iter().map(|&d| self.nodes[d].id.clone()).collect(),
                dependents: Vec::new(),
            })
            .collect();
        for &i in &order {
            for &d in &deps[i] {
                let id = nodes[i].node.id.clone();
                nodes[d].dependents.push(id);
            }
        }
        Ok(ValidatedGraph {
            graph: self.clone(),
            index: self
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.id.clone(), i))
                .collect(),
            nodes,
            deps,
            order,
        })
    }
}

/// Checks one node's config: an object, good templates, references only to
/// ancestors, secret and host fields as the extension needs them, and the
/// extension's own check. `exists(target)` says whether the graph has a
/// node `target`; `is_ancestor(target)` whether this node runs after it.
fn check_config(
    node: &Node,
    description: Option<&ExtensionDescription>,
    exists: &dyn Fn(&str) -> bool,
    is_ancestor: &dyn Fn(&str) -> bool,
    problems: &mut Vec<GraphProblem>,
) {
    if !node.config.is_object() {
        problems.push(GraphProblem::ConfigNotObject {
            node: node.id.clone(),
            found: kind_of(&node.config),
        });
        return;
    }
    let before = problems.len();
    let mut seen = HashSet::new();
    let _ = template::walk_strings(&node.config, &mut String::new(), &mut |pointer, text| {
        let template = match Template::parse(text) {
            Ok(t) => t,
            Err(error) => {
                problems.push(GraphProblem::Template {
                    node: node.id.clone(),
                    error: error.at(pointer),
                });
                return Ok::<(), ()>(());
            }
        };
        for p in template.placeholders() {
            let Source::Node(target) = &p.source else {
                continue;
            };
            if !seen.insert((pointer.to_owned(), target.clone())) {
                continue;
            }
            let (node_id, pointer, target) = (node.id.clone(), pointer.to_owned(), target.clone());
            if target == node_id {
                problems.push(GraphProblem::SelfReference {
                    node: node_id,
                    pointer,
                });
            } else if !exists(&target) {
                problems.push(GraphProblem::UnknownNodeReference {
                    node: node_id,
                    pointer,
                    target,
                });
            } else if !is_ancestor(&target) {
                problems.push(GraphProblem::NotAnAncestor {
                    node: node_id,
                    pointer,
                    target,
                });
            }
        }
        Ok(())
    });
    let Some(description) = description else {
        return;
    };
    for field in &description.secret_fields {
        if let Some(Value::String(s)) = node.config.pointer(&field.pointer)
            && s.contains("{{")
        {
            problems.push(GraphProblem::TemplateInSecretField {
                node: node.id.clone(),
                pointer: field.pointer.clone(),
            });
        }
    }
    // A template at a parent of such a field renders a whole object (or
    // array) at run time, field included.
    let guarded = description
        .secret_fields
        .iter()
        .map(|f| (&f.pointer, "names a secret"))
        .chain(
            description
                .host_fields
                .iter()
                .map(|p| (p, "decides where requests go")),
        );
    for (field, what) in guarded {
        let mut at = 0;
        while let Some(slash) = field[at..].find('/') {
            let parent = &field[..at + slash];
            at += slash + 1;
            if let Some(Value::String(s)) = node.config.pointer(parent)
                && s.contains("{{")
            {
                problems.push(GraphProblem::TemplateAboveField {
                    node: node.id.clone(),
                    pointer: parent.to_owned(),
                    field: field.clone(),
                    what,
                });
                break;
            }
        }
    }
    for pointer in &description.host_fields {
        if let Some(Value::String(s)) = node.config.pointer(pointer)
            && let Some(first) = s.find("{{")
            && !has_literal_authority(&s[..first])
        {
            problems.push(GraphProblem::TemplateInHost {
                node: node.id.clone(),
                pointer: pointer.clone(),
            });
        }
    }
    if problems.len() > before {
        // The extension's check would only repeat these, less clearly.
        return;
    }
    let dummy = dummy_config(&node.config);
    if let Err(message) = description.check_config(&dummy.to_string()) {
        problems.push(GraphProblem::BadConfig {
            node: node.id.clone(),
            extension: format!("{}@{}", description.name, description.version),
            message,
        });
    }
}

/// Whether `prefix` (the literal text before a URL's first template)
/// already holds the scheme and a host, ended by `/`, `?` or `#`: then no
/// rendered value can change where the request goes.
fn has_literal_authority(prefix: &str) -> bool {
    let Some((scheme, rest)) = prefix.split_once("://") else {
        return false;
    };
    let Some(end) = rest.find(['/', '?', '#']) else {
        return false;
    };
    !scheme.is_empty() && end > 0
}

/// The config with every engine placeholder rendered as `x`, for the
/// extension's shape check before any trigger or output exists.
pub(crate) fn dummy_config(value: &Value) -> Value {
    match value {
        Value::String(s) if s.contains("{{") => match Template::parse(s) {
            Ok(t) => Value::String(t.render_dummy("x")),
            Err(_) => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(dummy_config).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), dummy_config(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Kahn's algorithm over `deps` (node → the nodes it depends on), ties
/// broken by document order so the order is stable. Nodes left over are
/// on or behind a cycle; each cycle found among them is returned as a path
/// with its first node repeated at the end.
fn topological_order(deps: &[Vec<usize>]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let n = deps.len();
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &j in &dependents[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    if order.len() == n {
        return (order, Vec::new());
    }

    // Iterative DFS over the leftovers; each back edge closes a cycle.
    let left: Vec<bool> = waiting.iter().map(|&w| w > 0).collect();
    let mut color = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
    let mut cycles = Vec::new();
    let mut seen_sets = HashSet::new();
    for start in (0..n).filter(|&i| left[i]) {
        if color[start] != 0 {
            continue;
        }
        color[start] = 1;
        let mut stack = vec![(start, 0usize)];
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            if let Some(&d) = deps[node].get(*next) {
                *next += 1;
                if !left[d] {
                    continue;
                }
                match color[d] {
                    0 => {
                        color[d] = 1;
                        stack.push((d, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|&(x, _)| x == d).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|&(x, _)| x).collect();
                        if seen_sets.insert(cycle.iter().copied().collect::<BTreeSet<_>>()) {
                            cycle.push(d);
                            cycles.push(cycle);
                        }
                    }
                    _ => {}
                }
            } else {
                color[node] = 2;
                stack.pop();
            }
        }
    }
    (order, cycles)
}

/// Every node `i` depends on, directly or not.
fn ancestors(i: usize, deps: &[Vec<usize>]) -> HashSet<usize> {
    let mut seen = HashSet::new();
    let mut todo: Vec<usize> = deps[i].clone();
    while let Some(d) = todo.pop() {
        if seen.insert(d) {
            todo.extend(&deps[d]);
        }
    }
    seen
}

/// Writes `value` as compact JSON with object keys sorted.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (n, key) in keys.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A node that passed validation, with what the executor needs.
#[derive(Debug, Clone)]
pub struct ValidatedNode {
    pub node: Node,
    /// The installed extension it runs (its `version` is the resolved one
    /// when the graph did not pin one).
    pub extension: ExtensionDescription,
    /// Ids of the nodes it waits for.
    pub dependencies: Vec<String>,
    /// Ids of the nodes that wait for it.
    pub dependents: Vec<String>,
}

/// A graph known to be runnable: acyclic, every reference resolved.
#[derive(Debug, Clone)]
pub struct ValidatedGraph {
    graph: Graph,
    nodes: Vec<ValidatedNode>,
    index: HashMap<String, usize>,
    deps: Vec<Vec<usize>>,
    order: Vec<usize>,
}

impl ValidatedGraph {
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The nodes in document order.
    pub fn nodes(&self) -> &[ValidatedNode] {
        &self.nodes
    }

    pub fn node(&self, id: &str) -> Option<&ValidatedNode> {
        self.index.get(id).map(|&i| &self.nodes[i])
    }

    /// The nodes in an order where each comes after all it depends on
    /// (document order among nodes free to go).
    pub fn topological_order(&self) -> impl Iterator<Item = &ValidatedNode> {
        self.order.iter().map(|&i| &self.nodes[i])
    }

    /// A fresh run's bookkeeping: which nodes may start now.
    pub fn schedule(&self) -> Schedule<'_> {
        Schedule {
            graph: self,
            waiting: self.deps.iter().map(Vec::len).collect(),
            state: vec![State::Pending; self.nodes.len()],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Started,
    Finished,
    /// Failed, or skipped because something it depends on failed.
    Stopped,
}

/// For an executor that starts each node as soon as all it depends on has
/// finished: [`Schedule::start`] hands out the nodes that may run now,
/// [`Schedule::finish`] and [`Schedule::fail`] report back.
#[derive(Debug, Clone)]
pub struct Schedule<'g> {
    graph: &'g ValidatedGraph,
    waiting: Vec<usize>,
    state: Vec<State>,
}

impl<'g> Schedule<'g> {
    /// The nodes whose dependencies have all finished and that were not
    /// handed out before; each is marked started.
    pub fn start(&mut self) -> Vec<&'g ValidatedNode> {
        let mut out = Vec::new();
        for &i in &self.graph.order {
            if self.state[i] == State::Pending && self.waiting[i] == 0 {
                self.state[i] = State::Started;
                out.push(&self.graph.nodes[i]);
            }
        }
        out
    }

    /// Records that `id` finished; call [`Schedule::start`] for what may
    /// run next. Unknown ids are ignored.
    pub fn finish(&mut self, id: &str) {
        let Some(&i) = self.graph.index.get(id) else {
            return;
        };
        if self.state[i] == State::Finished {
            return;
        }
        self.state[i] = State::Finished;
        for dependent in &self.graph.nodes[i].dependents {
            let j = self.graph.index[dependent.as_str()];
            self.waiting[j] = self.waiting[j].saturating_sub(1);
        }
    }

    /// Records that `id` failed. Returns the ids of the nodes that now
    /// cannot run (everything downstream of it), which will not be started.
    pub fn fail(&mut self, id: &str) -> Vec<&'g str> {
        let Some(&i) = self.graph.index.get(id) else {
            return Vec::new();
        };
        self.state[i] = State::Stopped;
        let mut skipped = Vec::new();
        let mut todo = vec![i];
        while let Some(n) = todo.pop() {
            for dependent in &self.graph.nodes[n].dependents {
                let j = self.graph.index[dependent.as_str()];
                if self.state[j] == State::Pending {
                    self.state[j] = State::Stopped;
                    skipped.push(self.graph.nodes[j].node.id.as_str());
                    todo.push(j);
                }
            }
        }
        skipped
    }

    /// True when no node is pending or running.
    pub fn is_done(&self) -> bool {
        self.state
            .iter()
            .all(|s| matches!(s, State::Finished | State::Stopped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{RequiredSecret, SecretField};
    use serde_json::json;

    struct Catalog(Vec<ExtensionDescription>);

    impl ExtensionCatalog for Catalog {
        fn find(&self, name: &str, version: Option<&str>) -> Option<ExtensionDescription> {
            self.0
                .iter()
                .filter(|d| d.name == name && version.is_none_or(|v| v == d.version))
                .max_by(|a, b| a.version.cmp(&b.version))
                .cloned()
        }
    }

    fn ext(name: &str, version: &str) -> ExtensionDescription {
        ExtensionDescription {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            required_secrets: vec![],
            secret_fields: vec![],
            allowed_hosts: vec![],
            host_fields: vec![],
            wit: "0.1.0".into(),
            reveals_secrets: false,
        }
    }

    fn catalog() -> Catalog {
        Catalog(vec![
            ExtensionDescription {
                required_secrets: vec![RequiredSecret {
                    name: "DISCORD_BOT_TOKEN".into(),
                    hosts: vec!["discord.com".into()],
                    injection: Default::default(),
                }],
                allowed_hosts: vec!["discord.com".into()],
                ..ext("discord-send-message", "0.1.0")
            },
            ext("openrouter-chat", "0.1.0"),
            ext("openrouter-chat", "0.2.0"),
            ExtensionDescription {
                secret_fields: vec![SecretField {
                    pointer: "/auth/secret".into(),
                    hosts: vec![],
                    injection: Default::default(),
                }],
                host_fields: vec!["/url".into()],
                ..ext("http-request", "0.1.0")
            },
        ])
    }

    fn graph(nodes: Value) -> Graph {
        serde_json::from_value(json!({ "nodes": nodes })).unwrap()
    }

    fn problems(g: &Graph) -> Vec<String> {
        match g.validate(&catalog()) {
            Ok(_) => vec![],
            Err(GraphError::Invalid(ps)) => ps.iter().map(ToString::to_string).collect(),
            Err(e) => panic!("unexpected {e}"),
        }
    }

    const TOML_GRAPH: &str = r#"
name = "greeter"

[[nodes]]
id = "ask"
extension = "openrouter-chat"
config = { model = "openai/gpt-4o-mini", prompt = "Greet {{trigger.user}}", n = 2 }

[[nodes]]
id = "post"
extension = "discord-send-message@0.1.0"
depends_on = ["ask"]

[nodes.config]
channel_id = "123456789012345678"
content = "{{nodes.ask.output.text}}"
embeds = [{ title = "hi" }]
"#;

    const JSON_GRAPH: &str = r#"{
  "name": "greeter",
  "nodes": [
    {"id": "ask", "extension": "openrouter-chat",
     "config": {"prompt": "Greet {{trigger.user}}", "model": "openai/gpt-4o-mini", "n": 2}},
    {"id": "post", "extension": "discord-send-message@0.1.0", "depends_on": ["ask"],
     "config": {"content": "{{nodes.ask.output.text}}", "channel_id": "123456789012345678",
                "embeds": [{"title": "hi"}]}}
  ]
}"#;

    #[test]
    fn toml_and_json_give_the_same_graph() {
        let t = Graph::parse(TOML_GRAPH, None).unwrap();
        let j = Graph::parse(JSON_GRAPH, None).unwrap();
        assert_eq!(t, j);
        assert_eq!(t.canonical_json(), j.canonical_json());
        assert_eq!(t.version(), j.version());
        assert_eq!(t.version().len(), 64);
        assert_eq!(
            t.nodes[1].extension,
            ExtensionRef {
                name: "discord-send-message".into(),
                version: Some("0.1.0".into())
            }
        );
        assert!(t.canonical_json().starts_with(
            r#"{"name":"greeter","nodes":[{"config":{"model":"openai/gpt-4o-mini","n":2,"prompt":"Greet {{trigger.user}}"},"depends_on":[],"extension":"openrouter-chat","id":"ask"}"#
        ));
        // Canonical JSON parses back to the same graph.
        assert_eq!(Graph::parse(&t.canonical_json(), None).unwrap(), t);
        // A different config is a different version.
        let mut changed = t.clone();
        changed.nodes[0].config["n"] = json!(3);
        assert_ne!(changed.version(), t.version());
    }

    #[test]
    fn load_detects_format_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("g.toml");
        std::fs::write(&toml_path, TOML_GRAPH).unwrap();
        let json_path = dir.path().join("g.JSON");
        std::fs::write(&json_path, JSON_GRAPH).unwrap();
        assert_eq!(
            Graph::load(&toml_path).unwrap(),
            Graph::load(&json_path).unwrap()
        );
        // JSON text in a .toml file is read as TOML, and says so.
        std::fs::write(&toml_path, JSON_GRAPH).unwrap();
        let e = Graph::load(&toml_path).unwrap_err().to_string();
        assert!(
            e.contains("is not a valid TOML graph: line 1, column"),
            "{e}"
        );
        let missing = Graph::load(&dir.path().join("none.json")).unwrap_err();
        assert!(missing.to_string().starts_with("cannot read the graph "));
    }

    #[test]
    fn parse_errors_say_where_and_what() {
        let e = Graph::parse(
            "{\"nodes\": [\n  {\"id\": \"a\", \"extension\": \"x\", \"dependson\": []}\n]}",
            None,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "the graph is not a valid JSON graph: line 2, column 43: unknown field `dependson`, expected one of `id`, `extension`, `config`, `depends_on`"
        );
        let e = Graph::parse(
            "[[nodes]]\nid = \"a\"\nextension = \"x\"\ndependson = []\n",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("the graph is not a valid TOML graph: line 4, column 1: unknown field `dependson`, expected one of"),
            "{e}"
        );
        let e = Graph::parse("[[nodes]]\nid = \"a\"\nextension = \"Bad Name@\"\n", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 3, column 13: extension \"Bad Name@\" must be NAME or NAME@VERSION"),
            "{e}"
        );
        let e = Graph::parse("{\"nodes\": [", None).unwrap_err().to_string();
        assert!(
            e.starts_with("the graph is not a valid JSON graph: line 1, column 11: "),
            "{e}"
        );
        let e = Graph::parse("nodes = 5\nx = ", Some(Format::Toml))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("the graph is not a valid TOML graph: line 2, column"),
            "{e}"
        );
        let e = Graph::parse("{\"top\": 1}", None).unwrap_err().to_string();
        assert!(
            e.contains("unknown field `top`, expected one of `name`, `description`, `nodes`"),
            "{e}"
        );
    }

    #[test]
    fn valid_graph_has_order_and_edges() {
        let g = graph(json!([
            {"id": "post", "extension": "discord-send-message", "depends_on": ["ask", "fetch"],
             "config": {"content": "{{nodes.ask.output.text}} {{nodes.fetch.output}}"}},
            {"id": "ask", "extension": "openrouter-chat", "depends_on": ["fetch"],
             "config": {"prompt": "{{nodes.fetch.output.body}}"}},
            {"id": "fetch", "extension": "http-request",
             "config": {"url": "https://api.example.com/{{trigger.path}}?q={{trigger.q}}",
                        "auth": {"secret": "API_KEY"}}},
            {"id": "log", "extension": "openrouter-chat@0.1.0"},
        ]));
        let v = g.validate(&catalog()).unwrap();
        let order: Vec<&str> = v.topological_order().map(|n| n.node.id.as_str()).collect();
        assert_eq!(order, ["fetch", "ask", "post", "log"]);
        assert_eq!(v.node("ask").unwrap().extension.version, "0.2.0");
        assert_eq!(v.node("log").unwrap().extension.version, "0.1.0");
        assert_eq!(v.node("post").unwrap().dependencies, ["ask", "fetch"]);
        assert_eq!(v.node("fetch").unwrap().dependents, ["ask", "post"]);
        assert_eq!(v.node("log").unwrap().node.config, json!({}));
        assert_eq!(v.nodes().len(), 4);

        let mut s = v.schedule();
        let ids = |ns: Vec<&ValidatedNode>| {
            ns.into_iter()
                .map(|n| n.node.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(s.start()), ["fetch", "log"]);
        assert!(s.start().is_empty());
        s.finish("fetch");
        assert_eq!(ids(s.start()), ["ask"]);
        s.finish("log");
        assert!(!s.is_done());
        assert_eq!(s.fail("ask"), ["post"]);
        assert!(s.start().is_empty());
        assert!(s.is_done());
    }

    #[test]
    fn every_problem_is_reported() {
        let g = graph(json!([
            {"id": "a b", "extension": "openrouter-chat"},
            {"id": "dup", "extension": "openrouter-chat"},
            {"id": "dup", "extension": "openrouter-chat"},
            {"id": "post", "extension": "discord-send-message@0.2.0", "depends_on": ["ghost", "post"]},
            {"id": "x", "extension": "no-such-thing", "config": "text"},
        ]));
        assert_eq!(
            problems(&g),
            [
                "node id \"a b\" is not valid: ids are 1-64 characters of a-z, A-Z, 0-9, _ and -, for example \"ask-llm\"",
                "node id \"dup\" is used by 2 nodes; ids must be unique",
                "node \"post\": depends_on names \"ghost\", which is not a node of this graph",
                "node \"post\": depends_on names the node itself",
                "node \"post\": extension \"discord-send-message@0.2.0\" is not installed; installed versions: 0.1.0 (the newest); use \"discord-send-message@0.1.0\", or install 0.2.0 with `narakim extension install PATH.wasm`",
                "node \"x\": extension \"no-such-thing\" is not installed; install it with `narakim extension install PATH.wasm`",
                "node \"x\": config must be an object (a JSON object or a TOML table), not a string",
            ]
        );
        assert_eq!(
            problems(&Graph::parse("name = \"empty\"", None).unwrap()),
            ["the graph has no nodes; add at least one under \"nodes\""]
        );
        let e = g.validate(&catalog()).unwrap_err().to_string();
        assert!(
            e.starts_with("the graph has 7 problems:\n  - node id \"a b\""),
            "{e}"
        );
    }

    #[test]
    fn cycles_are_named() {
        let g = graph(json!([
            {"id": "a", "extension": "openrouter-chat", "depends_on": ["c"]},
            {"id": "b", "extension": "openrouter-chat", "depends_on": ["a"]},
            {"id": "c", "extension": "openrouter-chat", "depends_on": ["b"]},
            {"id": "d", "extension": "openrouter-chat", "depends_on": ["c", "e"]},
            {"id": "e", "extension": "openrouter-chat", "depends_on": ["d"]},
            {"id": "ok", "extension": "openrouter-chat"},
        ]));
        assert_eq!(
            problems(&g),
            [
                "the dependencies form a cycle: a -> c -> b -> a (each node depends on the next); remove one of these dependencies",
                "the dependencies form a cycle: d -> e -> d (each node depends on the next); remove one of these dependencies",
            ]
        );
    }

    #[test]
    fn outputs_only_from_ancestors() {
        let g = graph(json!([
            {"id": "a", "extension": "openrouter-chat"},
            {"id": "b", "extension": "openrouter-chat", "depends_on": ["a"],
             "config": {"p": "{{nodes.a.output}}"}},
            {"id": "c", "extension": "openrouter-chat", "depends_on": ["b"],
             "config": {"transitive": "{{nodes.a.output.text}}",
                        "sibling": ["{{nodes.d.output}}"],
                        "missing": "{{nodes.zzz.output}}",
                        "own": "{{nodes.c.output}}"}},
            {"id": "d", "extension": "openrouter-chat"},
        ]));
        assert_eq!(
            problems(&g),
            [
                "node \"c\": config /missing refers to node \"zzz\", which is not a node of this graph",
                "node \"c\": config /own uses the node's own output; a node can only use outputs of the nodes it depends on",
                "node \"c\": config /sibling/0 uses the output of node \"d\", which is not among its dependencies; add \"d\" to depends_on of \"c\"",
            ]
        );
    }

    #[test]
    fn bad_templates_name_node_and_field() {
        let g = graph(json!([
            {"id": "a", "extension": "openrouter-chat",
             "config": {"p": "Hi {{foo}}", "q": ["{{nodes.a}}"], "ok": "{{input.x}} {{trigger}}"}},
        ]));
        assert_eq!(
            problems(&g),
            [
                "node \"a\": config /p: bad template at character 4: \"{{foo}}\" is not a known placeholder; expected {{trigger.FIELD}} or {{nodes.ID.output.FIELD}}, for example {{nodes.ask.output.text}}",
                "node \"a\": config /q/0: bad template at character 1: \"{{nodes.a}}\" needs \".output\" after the node id; write {{nodes.a.output}} or {{nodes.a.output.FIELD}}",
            ]
        );
    }

    #[test]
    fn config_must_fit_the_extension() {
        let node = |config: Value| {
            graph(json!([{"id": "h", "extension": "http-request", "config": config}]))
        };
        assert_eq!(
            problems(&node(
                json!({"url": "https://api.example.com/{{trigger.p}}"})
            )),
            Vec::<String>::new()
        );
        assert_eq!(
            problems(&node(json!({"auth": {"secret": 5}}))),
            [
                "node \"h\": config does not fit extension \"http-request@0.1.0\": /auth/secret must be a string naming a secret, for example \"MY_API_KEY\""
            ]
        );
        assert_eq!(
            problems(&node(json!({"auth": {"secret": "{{trigger.key}}"}}))),
            [
                "node \"h\": config /auth/secret names a secret, so it must be a secret's name written out, such as \"MY_API_KEY\", not a template"
            ]
        );
        for url in [
            "https://{{trigger.host}}/x",
            "https://api.example.com{{trigger.p}}",
            "{{trigger.url}}",
        ] {
            assert_eq!(
                problems(&node(json!({"url": url}))),
                [
                    "node \"h\": config /url is a URL whose scheme and host must be written out; templates may only follow them, for example \"https://api.example.com/{{trigger.path}}\""
                ],
                "{url}"
            );
        }
        let e = problems(&node(json!({"url": "not a url"})));
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with(
                "node \"h\": config does not fit extension \"http-request@0.1.0\": /url:"
            ),
            "{e:?}"
        );
    }

    #[test]
    fn credential_findings_name_nodes() {
        let mut g = graph(json!([
            {"id": "post", "extension": "discord-send-message",
             "config": {"headers": {"Authorization": "Bearer abcdef0123456789abcdef"}}},
            {"id": "ok", "extension": "openrouter-chat", "config": {"model": "openai/gpt-4o-mini"}},
        ]));
        g.description = Some("uses sk-or-v1-0123456789abcdef0123456789abcdef".into());
        let findings = g.credential_findings();
        let shown: Vec<String> = findings.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "/description: an OpenRouter API key (sk-or-v1-…)",
                "node \"post\", config /headers/Authorization: a Bearer token",
            ]
        );
    }

    #[test]
    fn extension_refs_round_trip() {
        let r: ExtensionRef = "http-request@1.2.3-beta+x".parse().unwrap();
        assert_eq!(r.version.as_deref(), Some("1.2.3-beta+x"));
        assert_eq!(r.to_string(), "http-request@1.2.3-beta+x");
        for bad in ["", "@1", "x@", "Upper", "a b"] {
            assert!(bad.parse::<ExtensionRef>().is_err(), "{bad}");
        }
        let e = "Bearer abcdef0123456789abcdef"
            .parse::<ExtensionRef>()
            .unwrap_err();
        assert!(
            e.starts_with("extension (not shown: it may contain a value) must be"),
            "{e}"
        );
    }
}
