//! Validation against the real services' OpenAPI documents, for tests.
//!
//! Loads `../shared/reference/discord-openapi.json` and
//! `../shared/reference/openrouter-openapi.yaml` (next to the repository)
//! once, and checks JSON values against `#/components/schemas/NAME` with
//! the `jsonschema` crate: OpenAPI 3.1 schemas are JSON Schema 2020-12.
//! Each schema is compiled once per test binary and cached.
//!
//! Include it with `#[path = "support/openapi.rs"] mod openapi;`, then give
//! a stand-in `openapi::discord_validator()` or
//! `openapi::openrouter_validator()`, or check a response with
//! `openapi::check(Spec::Discord, "MessageResponse", &body)`.
//!
//! Quirks of the documents, and what is done about them:
//! - `format` is annotation only (the 2020-12 default): the documents use
//!   formats of their own (`snowflake`, `int64`, `double`, `nonce`) that no
//!   validator knows.
//! - OpenAPI keywords (`discriminator`, `example`, `x-speakeasy-*`) are
//!   unknown to JSON Schema and ignored; OpenRouter's `ChatMessages` is a
//!   `oneOf` whose branches differ by their `role` enum, so it still picks
//!   exactly one branch without the discriminator.
//! - The OpenRouter document is YAML; it is read as YAML and converted to
//!   JSON, map keys that YAML reads as numbers or booleans turned back into
//!   strings (JSON Schema only has string keys).
//! - OpenRouter's `ChatResult` requires `system_fingerprint`, which many real
//!   responses lack; the stand-in leaves it out on purpose (see
//!   `narakim::standin::openrouter`), so its responses fail `ChatResult`
//!   exactly there. Tests show that rather than patch the schema.
#![allow(dead_code)] // each test crate uses a different part of it

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use narakim::standin::Validator;
use serde_json::{Value, json};

/// Which OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Spec {
    Discord,
    OpenRouter,
}

const DISCORD_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/reference/discord-openapi.json"
);
const OPENROUTER_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/reference/openrouter-openapi.yaml"
);

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "cannot read the OpenAPI document {path}: {e}. The tests expect the shared \
             reference material (discord-openapi.json, openrouter-openapi.yaml) in \
             ../shared/reference next to the repository."
        )
    })
}

/// The whole OpenAPI document, parsed once.
pub fn document(spec: Spec) -> &'static Value {
    static DISCORD: OnceLock<Value> = OnceLock::new();
    static OPENROUTER: OnceLock<Value> = OnceLock::new();
    match spec {
        Spec::Discord => DISCORD.get_or_init(|| {
            serde_json::from_str(&read(DISCORD_PATH))
                .unwrap_or_else(|e| panic!("{DISCORD_PATH} is not JSON: {e}"))
        }),
        Spec::OpenRouter => OPENROUTER.get_or_init(|| {
            let yaml: serde_norway::Value = serde_norway::from_str(&read(OPENROUTER_PATH))
                .unwrap_or_else(|e| panic!("{OPENROUTER_PATH} is not YAML: {e}"));
            yaml_to_json(yaml)
        }),
    }
}

fn yaml_to_json(value: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        Y::Number(n) => n.to_string(),
                        Y::Bool(b) => b.to_string(),
                        Y::Null => "null".to_owned(),
                        other => panic!("unsupported YAML map key {other:?}"),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => yaml_to_json(tagged.value),
    }
}

/// Compiled schemas by document and name.
type Cache = Mutex<HashMap<(Spec, String), Arc<jsonschema::Validator>>>;

/// The compiled validator of `#/components/schemas/NAME`, cached.
fn compiled(spec: Spec, name: &str) -> Arc<jsonschema::Validator> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (spec, name.to_owned());
    if let Some(v) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return v.clone();
    }
    let doc = document(spec);
    assert!(
        doc["components"]["schemas"].get(name).is_some(),
        "no schema {name:?} in the {spec:?} OpenAPI document"
    );
    // The schema as a reference into the document's components, so every
    // local `$ref` inside resolves against the same root.
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{name}"),
        "components": { "schemas": doc["components"]["schemas"] },
    });
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .unwrap_or_else(|e| panic!("cannot compile {spec:?} schema {name}: {e}"));
    let validator = Arc::new(validator);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, validator.clone());
    validator
}

/// Checks `value` against the document's schema `name`; the error lists the
/// first few violations with where they are.
pub fn check(spec: Spec, name: &str, value: &Value) -> Result<(), String> {
    let validator = compiled(spec, name);
    let errors: Vec<String> = validator
        .iter_errors(value)
        .take(5)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("not a valid {name}: {}", errors.join("; ")))
    }
}

/// A stand-in validator over the Discord document.
pub fn discord_validator() -> Validator {
    Arc::new(|name: &str, value: &Value| check(Spec::Discord, name, value))
}

/// A stand-in validator over the OpenRouter document.
pub fn openrouter_validator() -> Validator {
    Arc::new(|name: &str, value: &Value| check(Spec::OpenRouter, name, value))
}
