//! Templates in node configs: `{{trigger.*}}` and `{{nodes.ID.output.*}}`.
//!
//! A node's config may use what started the execution (`{{trigger}}`,
//! `{{trigger.user.name}}`, `{{trigger.items.0}}`) and the output of nodes
//! that ran before it (`{{nodes.ask.output}}`, `{{nodes.ask.output.text}}`).
//! The engine renders these just before a node runs, so data flows between
//! nodes without the extension knowing about the graph.
//!
//! `{{input...}}` is not ours: the extension SDK renders it against the
//! node's input, so the engine accepts it and leaves it untouched.
//!
//! A string that is exactly one placeholder is replaced by the referenced
//! JSON value as it is, keeping its type (an array stays an array); inside
//! longer text a placeholder becomes the value's text (a string raw, any
//! other value as compact JSON).
//!
//! ```
//! use std::collections::HashMap;
//! use narakim::engine::template::{render, Context};
//! use serde_json::json;
//!
//! let trigger = json!({"user": "ada"});
//! let outputs = HashMap::from([("ask".to_owned(), json!({"text": "hi", "n": 2}))]);
//! let config = json!({
//!     "content": "{{nodes.ask.output.text}}, {{ trigger.user }}!",
//!     "count": "{{nodes.ask.output.n}}",
//!     "raw": "{{input.id}}",
//! });
//! let rendered = render(&config, &Context { trigger: &trigger, outputs: &outputs }).unwrap();
//! assert_eq!(rendered, json!({"content": "hi, ada!", "count": 2, "raw": "{{input.id}}"}));
//! ```

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

/// An example shown in errors, so a user sees the shape that works.
const EXAMPLES: &str =
    "{{trigger.FIELD}} or {{nodes.ID.output.FIELD}}, for example {{nodes.ask.output.text}}";

/// Where a placeholder's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// `{{trigger...}}`: the execution's trigger input.
    Trigger,
    /// `{{nodes.ID.output...}}`: the output of node `ID`.
    Node(String),
    /// `{{input...}}`: rendered later by the extension SDK, never by the
    /// engine.
    Input,
}

/// One `{{ ... }}` in a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    pub source: Source,
    /// The segments after `trigger` / `nodes.ID.output` (for `Input`,
    /// after `input`). Numeric segments index arrays.
    pub path: Vec<String>,
    /// The placeholder as written, braces included; `Input` placeholders
    /// are put back exactly like this.
    pub raw: String,
}

impl Placeholder {
    /// The path as written after the source, for messages (`text`,
    /// `items.0.name`; empty for the whole value).
    fn dotted(&self) -> String {
        self.path.join(".")
    }
}

/// A piece of a parsed string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Placeholder(Placeholder),
}

/// A string split into literal text and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What the engine renders templates against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub trigger: &'a Value,
    /// Outputs of the nodes that finished, by node id.
    pub outputs: &'a HashMap<String, Value>,
}

/// A node output or the trigger used by a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// JSON pointer of the config string holding the placeholder.
    pub pointer: String,
    /// `Trigger` or `Node(id)`; `Input` placeholders are not listed since
    /// they are not the engine's.
    pub source: Source,
    pub path: Vec<String>,
}

/// Why a template could not be parsed or rendered. Each names the config
/// field (a JSON pointer, empty for the whole config) so the user can find it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("{} bad template at character {column}: {problem}", Field(pointer))]
    Syntax {
        pointer: String,
        /// 1-based character position of the `{{` that is wrong.
        column: usize,
        problem: SyntaxProblem,
    },
    #[error(
        "{} {{{{nodes.{node}.output{}}}}}: node \"{node}\" has no output (it has not run, or it is not a dependency of this node)",
        Field(pointer),
        dotted_suffix(path)
    )]
    MissingOutput {
        pointer: String,
        node: String,
        path: String,
    },
    #[error(
        "{} {{{{{}{}}}}}: {} has no value at \"{path}\"",
        Field(pointer),
        source_prefix(origin),
        dotted_suffix(path),
        source_name(origin)
    )]
    MissingPath {
        pointer: String,
        origin: Source,
        path: String,
    },
}

/// What is wrong in a placeholder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxProblem {
    #[error("\"{{{{\" is not closed by \"}}}}\"; expected {EXAMPLES}")]
    Unclosed,
    #[error("the placeholder is empty; expected {EXAMPLES}")]
    Empty,
    #[error("{shown} is not a known placeholder; expected {EXAMPLES}")]
    UnknownNamespace { shown: Shown },
    #[error(
        "{shown} needs \".output\" after the node id; write {{{{nodes.{node}.output}}}} or {{{{nodes.{node}.output.FIELD}}}}"
    )]
    MissingOutput { shown: Shown, node: String },
    #[error(
        "{shown} does not name a valid node id (1-64 characters of a-z, A-Z, 0-9, _ and -); expected for example {{{{nodes.ask.output.text}}}}"
    )]
    BadNodeId { shown: Shown },
    #[error(
        "{shown} has an empty or invalid path segment (segments are 1 or more of a-z, A-Z, 0-9, _ and -, separated by single dots); expected {EXAMPLES}"
    )]
    BadSegment { shown: Shown },
}

/// A placeholder echoed in an error, but only when it looks like a path:
/// anything else might be a pasted value, so it is not repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown(Option<String>);

impl Shown {
    fn new(inner: &str) -> Self {
        let path_like = inner.len() <= 100
            && inner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b' '));
        Shown(path_like.then(|| format!("{{{{{}}}}}", inner.trim())))
    }
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(s) => write!(f, "\"{s}\""),
            None => f.write_str("the placeholder (not shown: it may contain a value)"),
        }
    }
}

/// How a config field is named in messages.
struct Field<'a>(&'a str);

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("config:")
        } else {
            write!(f, "config {}:", self.0)
        }
    }
}

fn dotted_suffix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(".{path}")
    }
}

fn source_prefix(source: &Source) -> String {
    match source {
        Source::Trigger => "trigger".to_owned(),
        Source::Node(id) => format!("nodes.{id}.output"),
        Source::Input => "input".to_owned(),
    }
}

fn source_name(source: &Source) -> String {
    match source {
        Source::Trigger => "the trigger".to_owned(),
        Source::Node(id) => format!("the output of node \"{id}\""),
        Source::Input => "the input".to_owned(),
    }
}

impl TemplateError {
    /// The same error, naming the config field at `pointer`.
    pub(crate) fn at(mut self, at: &str) -> Self {
        match &mut self {
            TemplateError::Syntax { pointer, .. }
            | TemplateError::MissingOutput { pointer, .. }
            | TemplateError::MissingPath { pointer, .. } => *pointer = at.to_owned(),
        }
        self
    }
}

/// Node ids: what `graph` accepts, repeated here so a template can be
/// checked on its own.
pub fn is_valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Template {
    /// Splits `text` into literals and placeholders. Errors name no field;
    /// [`references`] and [`render`] add the JSON pointer.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let column = text[..offset + open].chars().count() + 1;
            let syntax = |problem| TemplateError::Syntax {
                pointer: String::new(),
                column,
                problem,
            };
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| syntax(SyntaxProblem::Unclosed))?;
            let inner = &after[..close];
            let raw = &rest[open..open + 2 + close + 2];
            let placeholder = parse_placeholder(inner, raw).map_err(syntax)?;
            parts.push(Part::Placeholder(placeholder));
            let consumed = open + 2 + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The placeholders, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(p) => Some(p),
            Part::Literal(_) => None,
        })
    }

    /// True when the string has no `{{trigger…}}` or `{{nodes…}}`: the
    /// engine would leave it as it is.
    pub fn is_static(&self) -> bool {
        self.placeholders().all(|p| p.source == Source::Input)
    }

    /// Renders against `ctx`: a lone engine placeholder keeps the value's
    /// type, anything else becomes a string.
    pub fn render(&self, ctx: &Context<'_>) -> Result<Value, TemplateError> {
        if let [Part::Placeholder(p)] = self.parts.as_slice()
            && p.source != Source::Input
        {
            return lookup(p, ctx).cloned();
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Placeholder(p) if p.source == Source::Input => out.push_str(&p.raw),
                Part::Placeholder(p) => match lookup(p, ctx)? {
                    Value::String(s) => out.push_str(s),
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(Value::String(out))
    }

    /// Renders with `dummy` for every engine placeholder (a lone one too),
    /// so a config's shape can be checked before any value exists.
    pub fn render_dummy(&self, dummy: &str) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Placeholder(p) if p.source == Source::Input => out.push_str(&p.raw),
                Part::Placeholder(_) => out.push_str(dummy),
            }
        }
        out
    }
}

fn parse_placeholder(inner: &str, raw: &str) -> Result<Placeholder, SyntaxProblem> {
    let path = inner.trim_matches(|c: char| c.is_ascii_whitespace());
    if path.is_empty() {
        return Err(SyntaxProblem::Empty);
    }
    let shown = || Shown::new(inner);
    let mut segments = path.split('.');
    let head = segments.next().unwrap_or_default();
    let rest: Vec<&str> = segments.collect();
    let check = |segs: &[&str]| -> Result<Vec<String>, SyntaxProblem> {
        if segs.iter().all(|s| is_valid_segment(s)) {
            Ok(segs.iter().map(|s| (*s).to_owned()).collect())
        } else {
            Err(SyntaxProblem::BadSegment { shown: shown() })
        }
    };
    let (source, path) = match head {
        "trigger" => (Source::Trigger, check(&rest)?),
        "input" => (Source::Input, check(&rest)?),
        "nodes" => {
            let Some((id, after)) = rest.split_first() else {
                return Err(SyntaxProblem::BadNodeId { shown: shown() });
            };
            if !is_valid_node_id(id) {
                return Err(SyntaxProblem::BadNodeId { shown: shown() });
            }
            match after.split_first() {
                Some((&"output", path)) => (Source::Node((*id).to_owned()), check(path)?),
                _ => {
                    return Err(SyntaxProblem::MissingOutput {
                        shown: shown(),
                        node: (*id).to_owned(),
                    });
                }
            }
        }
        _ => return Err(SyntaxProblem::UnknownNamespace { shown: shown() }),
    };
    Ok(Placeholder {
        source,
        path,
        raw: raw.to_owned(),
    })
}

/// The value a placeholder points at.
fn lookup<'v>(p: &Placeholder, ctx: &Context<'v>) -> Result<&'v Value, TemplateError> {
    let mut value = match &p.source {
        Source::Trigger => ctx.trigger,
        Source::Node(id) => ctx
            .outputs
            .get(id)
            .ok_or_else(|| TemplateError::MissingOutput {
                pointer: String::new(),
                node: id.clone(),
                path: p.dotted(),
            })?,
        Source::Input => unreachable!("input placeholders are never looked up"),
    };
    for segment in &p.path {
        let next = match value {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        value = next.ok_or_else(|| TemplateError::MissingPath {
            pointer: String::new(),
            origin: p.source.clone(),
            path: p.dotted(),
        })?;
    }
    Ok(value)
}

/// Escapes one JSON pointer token (RFC 6901).
pub(crate) fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Calls `f` with the pointer and text of every string in `value` (object
/// values and array items; keys are not templated).
pub(crate) fn walk_strings<'v, E>(
    value: &'v Value,
    pointer: &mut String,
    f: &mut impl FnMut(&str, &'v str) -> Result<(), E>,
) -> Result<(), E> {
    match value {
        Value::String(s) => f(pointer, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                let r = walk_strings(item, pointer, f);
                pointer.truncate(len);
                r?;
            }
            Ok(())
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&pointer_token(key));
                let r = walk_strings(item, pointer, f);
                pointer.truncate(len);
                r?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Every trigger and node-output reference in `config`, for validation
/// (the graph checks each node it names is a dependency). The first bad
/// template is an error naming its field.
pub fn references(config: &Value) -> Result<Vec<Reference>, TemplateError> {
    let mut refs = Vec::new();
    walk_strings(config, &mut String::new(), &mut |pointer, text| {
        let template = Template::parse(text).map_err(|e| e.at(pointer))?;
        refs.extend(
            template
                .placeholders()
                .filter(|p| p.source != Source::Input)
                .map(|p| Reference {
                    pointer: pointer.to_owned(),
                    source: p.source.clone(),
                    path: p.path.clone(),
                }),
        );
        Ok(())
    })?;
    Ok(refs)
}

/// Renders every string of `config` against `ctx` (see the module doc for
/// the rules). Keys and non-string values are kept as they are.
pub fn render(config: &Value, ctx: &Context<'_>) -> Result<Value, TemplateError> {
    fn go(value: &Value, ctx: &Context<'_>, pointer: &mut String) -> Result<Value, TemplateError> {
        Ok(match value {
            Value::String(s) if s.contains("{{") => Template::parse(s)
                .and_then(|t| t.render(ctx))
                .map_err(|e| e.at(pointer))?,
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&i.to_string());
                    let r = go(item, ctx, pointer);
                    pointer.truncate(len);
                    out.push(r?);
                }
                Value::Array(out)
            }
            Value::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (key, item) in map {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&pointer_token(key));
                    let r = go(item, ctx, pointer);
                    pointer.truncate(len);
                    out.insert(key.clone(), r?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }
    go(config, ctx, &mut String::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx_parts() -> (Value, HashMap<String, Value>) {
        let trigger =
            json!({"user": {"name": "ada"}, "items": [{"name": "first"}, {"name": "second"}]});
        let outputs = HashMap::from([
            (
                "ask".to_owned(),
                json!({"text": "hello", "n": 3, "list": [1, 2], "obj": {"k": true}, "none": null}),
            ),
            ("plain".to_owned(), json!("just text")),
        ]);
        (trigger, outputs)
    }

    fn render_with(config: Value) -> Result<Value, TemplateError> {
        let (trigger, outputs) = ctx_parts();
        render(
            &config,
            &Context {
                trigger: &trigger,
                outputs: &outputs,
            },
        )
    }

    fn syntax_error(text: &str) -> String {
        Template::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_literals_and_placeholders() {
        let t = Template::parse("a {{ trigger.user.name }} b {{nodes.ask-1.output}}").unwrap();
        assert_eq!(t.parts().len(), 4);
        let ps: Vec<_> = t.placeholders().collect();
        assert_eq!(ps[0].source, Source::Trigger);
        assert_eq!(ps[0].path, vec!["user", "name"]);
        assert_eq!(ps[0].raw, "{{ trigger.user.name }}");
        assert_eq!(ps[1].source, Source::Node("ask-1".into()));
        assert!(ps[1].path.is_empty());
        assert!(Template::parse("{{trigger}}").is_ok());
        assert!(Template::parse("{{input.a.b}}").unwrap().is_static());
        assert!(
            Template::parse("no placeholders } here }}")
                .unwrap()
                .is_static()
        );
        assert!(Template::parse("{{nodes.Ask_2.output.items.0}}").is_ok());
    }

    #[test]
    fn bad_templates_have_clear_errors() {
        assert_eq!(
            syntax_error("hi {{foo}}"),
            "config: bad template at character 4: \"{{foo}}\" is not a known placeholder; expected {{trigger.FIELD}} or {{nodes.ID.output.FIELD}}, for example {{nodes.ask.output.text}}"
        );
        assert_eq!(
            syntax_error("{{nodes.x}}"),
            "config: bad template at character 1: \"{{nodes.x}}\" needs \".output\" after the node id; write {{nodes.x.output}} or {{nodes.x.output.FIELD}}"
        );
        assert_eq!(
            syntax_error("ok {{trigger}} then {{trigger.a"),
            "config: bad template at character 21: \"{{\" is not closed by \"}}\"; expected {{trigger.FIELD}} or {{nodes.ID.output.FIELD}}, for example {{nodes.ask.output.text}}"
        );
        assert_eq!(
            syntax_error("{{ }}"),
            "config: bad template at character 1: the placeholder is empty; expected {{trigger.FIELD}} or {{nodes.ID.output.FIELD}}, for example {{nodes.ask.output.text}}"
        );
        assert!(syntax_error("{{}}").contains("the placeholder is empty"));
        assert!(
            syntax_error("{{trigger..a}}")
                .contains("\"{{trigger..a}}\" has an empty or invalid path segment")
        );
        assert!(syntax_error("{{nodes..output}}").contains("does not name a valid node id"));
        assert!(syntax_error("{{nodes}}").contains("does not name a valid node id"));
        // Character positions count characters, not bytes.
        assert!(syntax_error("é {{x}}").contains("at character 3"));
        // Something that is not a path is not echoed back.
        let e = syntax_error("{{sk-or-v1-abc/def}}");
        assert!(e.contains("not shown"), "{e}");
        assert!(!e.contains("sk-or"), "{e}");
    }

    #[test]
    fn lone_placeholder_keeps_type() {
        let out = render_with(json!({
            "n": "{{nodes.ask.output.n}}",
            "list": "{{ nodes.ask.output.list }}",
            "obj": "{{nodes.ask.output.obj}}",
            "none": "{{nodes.ask.output.none}}",
            "whole": "{{nodes.plain.output}}",
            "trigger": "{{trigger.items.1}}",
        }))
        .unwrap();
        assert_eq!(
            out,
            json!({
                "n": 3, "list": [1, 2], "obj": {"k": true}, "none": null,
                "whole": "just text", "trigger": {"name": "second"},
            })
        );
    }

    #[test]
    fn text_placeholders_become_text() {
        let out = render_with(json!({
            "a": "{{trigger.user.name}} said {{nodes.ask.output.text}}",
            "b": "n={{nodes.ask.output.n}} list={{nodes.ask.output.list}} obj={{nodes.ask.output.obj}} none={{nodes.ask.output.none}}",
            "nested": [{"x": "<{{trigger.items.0.name}}>"}, 7, true],
            "keys {{trigger}}": "kept",
            "input": "{{input.id}} and {{ trigger.user.name }}",
            "lone_input": "{{ input }}",
        }))
        .unwrap();
        assert_eq!(
            out,
            json!({
                "a": "ada said hello",
                "b": "n=3 list=[1,2] obj={\"k\":true} none=null",
                "nested": [{"x": "<first>"}, 7, true],
                "keys {{trigger}}": "kept",
                "input": "{{input.id}} and ada",
                "lone_input": "{{ input }}",
            })
        );
    }

    #[test]
    fn missing_values_name_node_and_path() {
        assert_eq!(
            render_with(json!({"a": {"b": "{{nodes.ask.output.nope}}"}}))
                .unwrap_err()
                .to_string(),
            "config /a/b: {{nodes.ask.output.nope}}: the output of node \"ask\" has no value at \"nope\""
        );
        assert_eq!(
            render_with(json!({"a": ["x {{nodes.later.output.text}}"]}))
                .unwrap_err()
                .to_string(),
            "config /a/0: {{nodes.later.output.text}}: node \"later\" has no output (it has not run, or it is not a dependency of this node)"
        );
        assert_eq!(
            render_with(json!({"a": "{{trigger.items.5}}"}))
                .unwrap_err()
                .to_string(),
            "config /a: {{trigger.items.5}}: the trigger has no value at \"items.5\""
        );
        assert!(
            render_with(json!({"a/b": "{{foo}}"}))
                .unwrap_err()
                .to_string()
                .starts_with("config /a~1b: bad template at character 1")
        );
    }

    #[test]
    fn references_lists_nodes_and_trigger() {
        let refs = references(&json!({
            "a": "{{nodes.ask.output.text}} {{input.x}}",
            "b": [{"c": "{{trigger}}"}],
            "d": 5,
        }))
        .unwrap();
        assert_eq!(
            refs,
            vec![
                Reference {
                    pointer: "/a".into(),
                    source: Source::Node("ask".into()),
                    path: vec!["text".into()]
                },
                Reference {
                    pointer: "/b/0/c".into(),
                    source: Source::Trigger,
                    path: vec![]
                },
            ]
        );
        let e = references(&json!({"x": {"y": "{{nodes.a}}"}})).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("config /x/y: bad template at character 1")
        );
    }

    #[test]
    fn dummy_render_keeps_input_and_literals() {
        let t = Template::parse("https://api.example.com/{{trigger.p}}/{{input.q}}").unwrap();
        assert_eq!(t.render_dummy("x"), "https://api.example.com/x/{{input.q}}");
    }
}
