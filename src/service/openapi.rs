//! The OpenAPI 3.1 document of the API, generated from the route table
//! ([`api::ROUTES`]) the router is built from, with the component schemas
//! below. Served at `/api/v1/openapi.json` and committed as
//! `docs/openapi.json` (`narakim openapi > docs/openapi.json`); a test
//! fails when the two differ.

use serde_json::{Map, Value, json};

use super::api::{self, Route};

/// Statuses every authenticated route may answer.
const AUTHENTICATED: [u16; 3] = [401, 403, 429];

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in api::ROUTES {
        let item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        item[route.method.as_str().to_ascii_lowercase()] = operation(route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "narakim",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The HTTP API of `narakim serve`. Secrets are write-only: no route returns a value. Every error is an RFC 9457 problem (application/problem+json).",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer", "description": "An API token (nrk_…) from `narakim token create`."}
            },
            "schemas": schemas(),
        }
    })
}

fn operation(route: &Route) -> Value {
    let mut op = json!({
        "operationId": route.operation_id,
        "summary": route.summary,
    });
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({"name": name, "in": "path", "required": true, "schema": path_schema(name)})
        })
        .collect();
    if route.operation_id == "showExtension" {
        parameters.push(json!({
            "name": "version", "in": "query", "required": false,
            "schema": {"type": "string"},
        }));
    }
    for header in route.headers {
        parameters.push(json!({
            "name": header, "in": "header", "required": false,
            "schema": {"type": "string"},
        }));
    }
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    if route.request == Some("Component") {
        op["requestBody"] = json!({
            "required": true,
            "content": {"application/wasm": {"schema": {"type": "string", "format": "binary"}}}
        });
    } else if let Some(schema) = route.request {
        op["requestBody"] = json!({
            // A run's trigger may be left out: it defaults to {}.
            "required": schema != "Trigger",
            "content": {"application/json": {"schema": reference(schema)}}
        });
    }
    let mut responses = Map::new();
    for (status, schema) in route.success {
        let mut response = json!({"description": description(*status)});
        match (schema, route.path) {
            (Some(schema), _) => {
                response["content"] = json!({"application/json": {"schema": reference(schema)}});
            }
            (None, "/metrics") => {
                response["content"] = json!({"text/plain": {"schema": {"type": "string"}}});
            }
            (None, "/api/v1/openapi.json") => {
                response["content"] = json!({"application/json": {"schema": {"type": "object"}}});
            }
            (None, _) => {}
        }
        responses.insert(status.to_string(), response);
    }
    let mut failures: Vec<u16> = route.failures.to_vec();
    if route.access.is_some() {
        failures.extend(AUTHENTICATED);
    }
    failures.sort_unstable();
    failures.dedup();
    for status in failures {
        responses.insert(
            status.to_string(),
            json!({
                "description": description(status),
                "content": {"application/problem+json": {"schema": reference("Problem")}}
            }),
        );
    }
    op["responses"] = Value::Object(responses);
    match route.access {
        Some(access) => {
            op["security"] = json!([{"token": []}]);
            op["x-narakim-scope"] = json!(access.scope);
            if let Some(capability) = access.capability {
                op["x-narakim-capability"] = json!(capability.as_str());
            }
        }
        None => op["security"] = json!([]),
    }
    op
}

fn reference(schema: &str) -> Value {
    if schema == "Trigger" {
        // Any JSON value.
        return json!({});
    }
    json!({"$ref": format!("#/components/schemas/{schema}")})
}

fn path_schema(name: &str) -> Value {
    match name {
        "team" | "bot" => json!({"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}),
        "name" => json!({"type": "string", "pattern": "^[A-Z][A-Z0-9_]{0,127}$"}),
        "extension" => json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"}),
        "trigger_id" => json!({"type": "string", "pattern": "^trg_[0-9a-f]{32}$"}),
        _ => json!({"type": "string"}),
    }
}

fn description(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted: durably queued",
        204 => "Done; no body",
        400 => "The request is malformed",
        401 => "No token, or not a valid one",
        403 => "The token's scope or capabilities do not cover this",
        404 => "No such team, bot, secret or execution",
        409 => "Conflicts with what exists (a duplicate, a paused or undeployed bot)",
        412 => "The secret is not at the expected version; nothing changed",
        413 => "The body is over the limit",
        415 => "The body is not JSON",
        422 => "The input is well-formed but invalid",
        429 => "Over the token's rate limit; see Retry-After",
        503 => "Not ready, or the queue is full; see Retry-After",
        _ => "See the problem detail",
    }
}

fn schemas() -> Value {
    let string = json!({"type": "string"});
    let nullable_string = json!({"type": ["string", "null"]});
    let integer = json!({"type": "integer", "minimum": 0});
    let time = json!({"type": "string", "description": "UTC, like 2026-12-02T10:00:00Z"});
    json!({
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"}, "title": string, "status": {"type": "integer"}, "detail": string,
            },
        },
        "Status": object(&[("status", &string)], &[]),
        "NameRequest": closed(&[("name", &path_schema("team"))]),
        "Named": object(&[("name", &string)], &[("team", &string)]),
        "Team": object(&[("name", &string), ("bots", &integer), ("secrets", &integer), ("created_at", &time)], &[]),
        "TeamList": list("teams", "Team"),
        "Bot": object(&[("name", &string), ("team", &string), ("secrets", &integer), ("created_at", &time)], &[]),
        "BotList": list("bots", "Bot"),
        "BotState": object(&[("name", &string), ("paused", &json!({"type": "boolean"})), ("graph_version", &nullable_string), ("triggers", &json!({"type": "array", "items": reference("Trigger")}))], &[]),
        "Trigger": object(&[
            ("trigger", &string),
            ("kind", &json!({"enum": ["webhook", "discord-interactions", "schedule"]})),
            ("verify", &string),
            ("secret", &nullable_string),
            ("path", &nullable_string),
            ("next_fire", &nullable_string),
        ], &[]),
        "Secret": object(&[
            ("name", &string),
            ("scope", &json!({"enum": ["bot", "team"]})),
            ("owner", &string),
            ("version", &json!({"type": "integer", "minimum": 1})),
            ("created_at", &time),
            ("updated_at", &time),
            ("updated_by", &nullable_string),
            ("fingerprint", &string),
            ("effective", &json!({"type": "boolean"})),
            ("used_by", &json!({"type": "array", "items": string})),
        ], &[]),
        "SecretList": list("secrets", "Secret"),
        "SecretWrite": {"oneOf": [
            {
                "type": "object",
                "required": ["value"],
                "additionalProperties": false,
                "properties": {"value": {"type": "string", "minLength": 8, "description": "8 bytes to 64 KiB of UTF-8, no NUL. Never returned."}},
            },
            {
                "type": "object",
                "required": ["sealed"],
                "additionalProperties": false,
                "description": "The value sealed with HPKE to the key of GET /api/v1/seal-key, bound to this write's scope, owner, name and If-Match/If-None-Match version.",
                "properties": {"sealed": closed(&[("key_id", &string), ("enc", &string), ("ciphertext", &string)])},
            },
        ]},
        "SealKey": object(&[
            ("suite", &string), ("kem_id", &integer), ("kdf_id", &integer), ("aead_id", &integer),
            ("info", &string), ("key_id", &string), ("public_key", &string), ("aad", &string),
        ], &[]),
        "SecretWritten": object(&[("version", &json!({"type": "integer", "minimum": 1})), ("location", &string)], &[]),
        "Requirement": object(&[
            ("node", &string), ("extension", &string), ("secret", &string),
            ("source", &json!({"enum": ["bot", "team", "trigger", "missing"]})),
        ], &[]),
        "Requirements": object(&[
            ("bot", &string),
            ("paused", &json!({"type": "boolean"})),
            ("graph_version", &nullable_string),
            ("requirements", &json!({"type": "array", "items": reference("Requirement")})),
            ("missing", &integer),
            ("pins", &json!({"type": "object"})),
            ("triggers", &json!({"type": "array", "items": reference("Trigger")})),
        ], &[]),
        "Graph": {"type": "object", "description": "A bot graph document (see the README), as JSON."},
        "Deployment": object(&[
            ("graph_version", &string), ("graph", &json!({"type": "object"})),
            ("pins", &json!({"type": "object"})), ("deployed_at", &time),
        ], &[]),
        "Deployed": object(&[("graph_version", &string), ("pins", &json!({"type": "object"})), ("changes", &json!({"type": "array", "items": string}))], &[]),
        "PauseState": object(&[("bot", &string), ("paused", &json!({"type": "boolean"}))], &[]),
        "Delivered": object(&[
            ("execution_id", &string),
            ("status", &json!({"enum": ["queued", "running", "succeeded", "failed"]})),
            ("replayed", &json!({"type": "boolean"})),
            ("bot", &string),
        ], &[]),
        "InteractionResponse": object(&[("type", &integer)], &[("data", &json!({"type": "object"}))]),
        "Enqueued": object(&[
            ("execution_id", &string),
            ("status", &json!({"enum": ["queued", "running", "succeeded", "failed"]})),
            ("replayed", &json!({"type": "boolean"})),
            ("location", &string),
        ], &[]),
        "ExecutionSummary": object(&[
            ("id", &string), ("bot", &string), ("graph_version", &string),
            ("status", &json!({"enum": ["queued", "running", "succeeded", "failed"]})),
            ("started_at", &time), ("finished_at", &nullable_string), ("summary", &nullable_string),
        ], &[]),
        "ExecutionList": list("executions", "ExecutionSummary"),
        "NodeRun": object(&[
            ("node", &string), ("extension", &string),
            ("status", &json!({"enum": ["succeeded", "failed", "skipped"]})),
            ("started_at", &time), ("duration_ms", &integer), ("output", &json!({})),
            ("error", &nullable_string), ("logs", &json!({"type": "array"})),
            ("stdout", &string), ("stderr", &string),
            ("secrets_read", &json!({"type": "array", "items": string})),
            ("egress", &json!({"type": "array"})), ("egress_dropped", &integer),
        ], &[]),
        "Execution": object(&[
            ("id", &string), ("bot", &string), ("graph_version", &string),
            ("status", &json!({"enum": ["queued", "running", "succeeded", "failed"]})),
            ("finished", &json!({"type": "boolean"})),
            ("started_at", &time), ("finished_at", &nullable_string), ("summary", &nullable_string),
            ("started_by", &nullable_string),
            ("trigger", &json!({})),
            ("nodes", &json!({"type": "array", "items": reference("NodeRun")})),
        ], &[]),
        "AuditEntry": object(&[
            ("id", &integer), ("at", &time), ("actor", &string), ("action", &string),
            ("scope", &nullable_string), ("owner", &nullable_string), ("name", &nullable_string),
            ("detail", &string),
        ], &[]),
        "AuditList": list("entries", "AuditEntry"),
        "Extension": object(&[
            ("name", &string), ("version", &string), ("sha256", &string),
            ("installed_at", &time), ("description", &json!({"type": "object"})),
            ("reveals_secrets", &json!({"type": "boolean"})),
        ], &[("versions", &json!({"type": "array", "items": string}))]),
        "ExtensionList": list("extensions", "Extension"),
        "Installed": object(&[
            ("name", &string), ("version", &string), ("sha256", &string),
            ("installed_at", &time), ("description", &json!({"type": "object"})),
            ("reveals_secrets", &json!({"type": "boolean"})),
            ("outcome", &json!({"enum": ["installed", "already_installed", "new_version"]})),
            ("changes", &json!({"type": "array", "items": string})),
        ], &[]),
    })
}

/// An object with these required and optional properties.
fn object(required: &[(&str, &Value)], optional: &[(&str, &Value)]) -> Value {
    let mut properties = Map::new();
    for (name, schema) in required.iter().chain(optional) {
        properties.insert((*name).to_owned(), (*schema).clone());
    }
    json!({
        "type": "object",
        "required": required.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "properties": properties,
    })
}

/// A request object that takes exactly these properties.
fn closed(required: &[(&str, &Value)]) -> Value {
    let mut schema = object(required, &[]);
    schema["additionalProperties"] = json!(false);
    schema
}

fn list(field: &str, item: &str) -> Value {
    object(
        &[(field, &json!({"type": "array", "items": reference(item)}))],
        &[],
    )
}
