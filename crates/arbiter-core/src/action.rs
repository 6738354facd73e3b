//! The action an agent proposes, and the checks every action passes at the edge.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What an agent proposes to do: the action class (`name`) and its details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// The action class, e.g. `isolate_host`.
    pub name: String,
    /// The tool arguments, e.g. `{"host": "web-17"}`.
    #[serde(default = "empty_object")]
    pub args: Value,
    /// The agent's own confidence in `[0, 1]`, if it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Other numeric or categorical signals (anomaly scores, alert types, ...).
    #[serde(default = "empty_object")]
    pub signals: Value,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Bounds on what an agent may send; agents are LLMs and their payloads are
/// untrusted, so every bound has a sane default.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest action name, in bytes.
    pub max_name_len: usize,
    /// Deepest JSON nesting in args, signals and context.
    pub max_depth: usize,
    /// Longest single string value, in bytes.
    pub max_string_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_name_len: 128, max_depth: 16, max_string_len: 64 * 1024 }
    }
}

/// Why an action was refused at the edge; `field` names the offending part.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ActionError {
    /// JSON path of the offending field, e.g. `action.confidence`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Action {
    /// Check the invariants the rest of the system relies on: a well-formed
    /// name, a confidence in `[0, 1]`, objects where objects belong, and
    /// bounded nesting and string sizes.
    pub fn validate(&self, limits: &Limits) -> Result<(), ActionError> {
        let err = |field: &str, message: String| ActionError { field: field.to_string(), message };
        if self.name.is_empty() || self.name.len() > limits.max_name_len {
            return Err(err("action.name", format!("must be 1 to {} bytes long", limits.max_name_len)));
        }
        if !self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-') {
            return Err(err("action.name", "may contain only ASCII letters, digits, `_`, `.` and `-`".to_string()));
        }
        if let Some(c) = self.confidence
            && (!(0.0..=1.0).contains(&c) || c.is_nan())
        {
            return Err(err("action.confidence", format!("must be between 0 and 1, got {c}")));
        }
        for (field, v) in [("action.args", &self.args), ("action.signals", &self.signals)] {
            if !v.is_object() {
                return Err(err(field, "must be a JSON object".to_string()));
            }
            check_value(field, v, limits, 0)?;
        }
        Ok(())
    }
}

/// Check nesting depth and string sizes of an arbitrary JSON value.
pub fn check_value(field: &str, v: &Value, limits: &Limits, depth: usize) -> Result<(), ActionError> {
    if depth > limits.max_depth {
        return Err(ActionError {
            field: field.to_string(),
            message: format!("nests deeper than {} levels", limits.max_depth),
        });
    }
    match v {
        Value::String(s) if s.len() > limits.max_string_len => Err(ActionError {
            field: field.to_string(),
            message: format!("has a string longer than {} bytes", limits.max_string_len),
        }),
        Value::Array(items) => items.iter().try_for_each(|i| check_value(field, i, limits, depth + 1)),
        Value::Object(m) => m.values().try_for_each(|i| check_value(field, i, limits, depth + 1)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn action(v: Value) -> Action {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn accepts_a_normal_action() {
        let a = action(json!({"name": "isolate_host", "args": {"host": "web-17"}, "confidence": 0.8}));
        a.validate(&Limits::default()).unwrap();
    }

    #[test]
    fn names_the_bad_field() {
        let a = action(json!({"name": "x", "confidence": 1.5}));
        assert_eq!(a.validate(&Limits::default()).unwrap_err().field, "action.confidence");
        let a = action(json!({"name": "bad name<script>"}));
        assert_eq!(a.validate(&Limits::default()).unwrap_err().field, "action.name");
        let a = action(json!({"name": "x", "args": [1]}));
        assert_eq!(a.validate(&Limits::default()).unwrap_err().field, "action.args");
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!([deep]);
        }
        let a = action(json!({"name": "x", "args": {"d": deep}}));
        assert!(a.validate(&Limits::default()).is_err());
    }
}
