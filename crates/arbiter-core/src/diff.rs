//! What a reviewer's modification changed: the difference between two
//! argument objects, field by field, for the case timeline, the console and
//! `cases show`.

use serde::Serialize;
use serde_json::Value;

/// One changed field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArgChange {
    /// Dotted path of the field (`host`, `options.mode`, `tags[1]`).
    pub path: String,
    /// Its value before (absent: added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// Its value after (absent: removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

impl std::fmt::Display for ArgChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.before, &self.after) {
            (Some(b), Some(a)) => write!(f, "~ {}: {b} -> {a}", self.path),
            (None, Some(a)) => write!(f, "+ {}: {a}", self.path),
            (Some(b), None) => write!(f, "- {}: {b}", self.path),
            (None, None) => write!(f, "  {}", self.path),
        }
    }
}

/// The fields that differ between `before` and `after`, in path order.
/// Objects are compared member by member; arrays of equal length element
/// by element; anything else (or arrays of different lengths) as a whole.
pub fn args_diff(before: &Value, after: &Value) -> Vec<ArgChange> {
    let mut out = Vec::new();
    walk(String::new(), Some(before), Some(after), &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn walk(path: String, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<ArgChange>) {
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                walk(join(&path, k), b.get(k), a.get(k), out);
            }
        }
        (Some(Value::Array(b)), Some(Value::Array(a))) if a.len() == b.len() && !path.is_empty() => {
            for (i, (x, y)) in b.iter().zip(a).enumerate() {
                walk(format!("{path}[{i}]"), Some(x), Some(y), out);
            }
        }
        (b, a) if b != a => out.push(ArgChange {
            path: if path.is_empty() { "(args)".into() } else { path },
            before: b.cloned(),
            after: a.cloned(),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_each_changed_added_and_removed_field() {
        let before = json!({"host": "ws-042", "host_tags": ["workstation"], "mode": "full", "keep": 1});
        let after = json!({"host": "dc-01", "host_tags": ["crown_jewel", "domain_controller"], "keep": 1, "why": "x"});
        let d = args_diff(&before, &after);
        let text: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                r#"~ host: "ws-042" -> "dc-01""#,
                r#"~ host_tags: ["workstation"] -> ["crown_jewel","domain_controller"]"#,
                r#"- mode: "full""#,
                r#"+ why: "x""#,
            ]
        );
        assert!(args_diff(&before, &before).is_empty());
        let nested = args_diff(&json!({"o": {"a": [1, 2]}}), &json!({"o": {"a": [1, 3]}}));
        assert_eq!(nested[0].path, "o.a[1]");
    }
}
