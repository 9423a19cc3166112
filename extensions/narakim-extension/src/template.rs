//! `{{input.PATH}}` placeholders in config text.
//!
//! The engine renders `{{trigger.…}}` and `{{nodes.ID.output.…}}` before the
//! extension runs; what is left for the extension is `{{input}}` (the whole
//! input) and `{{input.a.b}}` (a path into it; array elements by index,
//! `{{input.items.0.name}}`). Strings are inserted as they are, other values
//! as compact JSON.

use serde_json::Value;

use crate::Error;

/// Renders every `{{input…}}` placeholder in `text` from `input`.
///
/// ```
/// let input = serde_json::json!({"user": {"name": "Ada", "roles": ["admin"]}});
/// let text = narakim_extension::template::render("hi {{input.user.name}} {{ input.user.roles }}", &input).unwrap();
/// assert_eq!(text, r#"hi Ada ["admin"]"#);
/// ```
pub fn render(text: &str, input: &Value) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            let offset = text.len() - rest.len() + start;
            return Err(Error::new(format!(
                "template: `{{{{` at byte {offset} is never closed with `}}}}`"
            )));
        };
        let expr = after[..end].trim();
        out.push_str(&lookup(expr, input)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn lookup(expr: &str, input: &Value) -> Result<String, Error> {
    let path = match expr.strip_prefix("input") {
        Some("") => "",
        Some(path) if path.starts_with('.') => &path[1..],
        _ => {
            return Err(Error::new(format!(
                "template: unknown template namespace in `{{{{{expr}}}}}`: an extension renders only \
                 `{{{{input}}}}` and `{{{{input.PATH}}}}` (the engine renders `{{{{trigger.…}}}}` and \
                 `{{{{nodes.…}}}}` before the extension runs)"
            )));
        }
    };
    let mut value = input;
    let mut walked = String::from("input");
    if !path.is_empty() {
        for key in path.split('.') {
            let next = match value {
                Value::Object(map) => map.get(key),
                Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            value = next.ok_or_else(|| {
                let what = match value {
                    Value::Object(_) => String::new(),
                    Value::Array(items) => format!(" (it is an array of {} elements)", items.len()),
                    other => format!(" (it is {})", kind(other)),
                };
                Error::new(format!(
                    "template: `{{{{{expr}}}}}`: {walked} has no `{key}`{what}"
                ))
            })?;
            walked.push('.');
            walked.push_str(key);
        }
    }
    Ok(match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::render;
    use serde_json::json;

    #[test]
    fn renders_paths_whole_input_and_errors() {
        let input = json!({"a": {"b": "x", "n": 3, "list": [{"k": true}]}});
        assert_eq!(
            render("{{input.a.b}}-{{input.a.n}}", &input).unwrap(),
            "x-3"
        );
        assert_eq!(render("{{ input.a.list.0.k }}", &input).unwrap(), "true");
        assert_eq!(render("{{input}}", &json!({"q": 1})).unwrap(), r#"{"q":1}"#);
        assert_eq!(
            render("no placeholders } {", &input).unwrap(),
            "no placeholders } {"
        );
        let missing = render("{{input.a.zz}}", &input).unwrap_err().to_string();
        assert!(missing.contains("input.a has no `zz`"), "{missing}");
        let unclosed = render("hi {{input.a", &input).unwrap_err().to_string();
        assert!(unclosed.contains("never closed"), "{unclosed}");
        let namespace = render("{{trigger.x}}", &input).unwrap_err().to_string();
        assert!(
            namespace.contains("unknown template namespace"),
            "{namespace}"
        );
        assert!(render("{{inputs.a}}", &input).is_err());
    }
}
