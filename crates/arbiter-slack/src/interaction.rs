//! Interaction payloads, as Slack sends them to the app's interactivity URL:
//! an `application/x-www-form-urlencoded` body whose `payload` field is JSON
//! (<https://api.slack.com/reference/interaction-payloads>). Only the fields
//! Arbiter uses are read; everything else is ignored.

use crate::message::{ANSWER_MODAL, Choice};
use serde_json::{Value, json};

/// What a person did in Slack.
#[derive(Debug, Clone, PartialEq)]
pub enum Interaction {
    /// A button of a case message (`block_actions`).
    Button {
        /// The Slack user.
        user: String,
        /// The button's action id.
        action_id: String,
        /// Its value (`{project}/{case id}`).
        value: String,
        /// For opening a modal (valid for three seconds).
        trigger_id: String,
        /// Where the message is.
        channel: Option<String>,
    },
    /// The answer modal was submitted (`view_submission`).
    Answer {
        /// The Slack user.
        user: String,
        /// The case's project.
        project: String,
        /// The case.
        case_id: String,
        /// Approve, reject or modify.
        choice: Choice,
        /// The rationale typed.
        rationale: String,
        /// Failure-mode tags typed (comma-separated).
        failure_modes: Vec<String>,
        /// The edited arguments, as typed (modify only).
        args: Option<String>,
    },
    /// Anything else Slack may send (a modal closed, a shortcut): acknowledged, nothing done.
    Other(String),
}

/// Why a payload cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Slack interaction payload: {0}")]
pub struct PayloadError(pub String);

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k)).and_then(Value::as_str)
}

/// Read a form-encoded interaction body.
pub fn parse(body: &[u8]) -> Result<Interaction, PayloadError> {
    let payload = form_field(body, "payload").ok_or_else(|| PayloadError("the body has no `payload` field".into()))?;
    let v: Value = serde_json::from_str(&payload).map_err(|e| PayloadError(format!("`payload` is not JSON: {e}")))?;
    let user = text(&v, &["user", "id"]).ok_or_else(|| PayloadError("no user.id".into()))?.to_string();
    match v["type"].as_str().unwrap_or("") {
        "block_actions" => {
            let action = v["actions"].get(0).ok_or_else(|| PayloadError("block_actions without actions".into()))?;
            Ok(Interaction::Button {
                user,
                action_id: text(action, &["action_id"]).unwrap_or("").to_string(),
                value: text(action, &["value"]).unwrap_or("").to_string(),
                trigger_id: text(&v, &["trigger_id"]).unwrap_or("").to_string(),
                channel: text(&v, &["channel", "id"])
                    .or_else(|| text(&v, &["container", "channel_id"]))
                    .map(str::to_string),
            })
        }
        "view_submission" if text(&v, &["view", "callback_id"]) == Some(ANSWER_MODAL) => {
            let meta: Value = serde_json::from_str(text(&v, &["view", "private_metadata"]).unwrap_or("{}"))
                .map_err(|_| PayloadError("the modal's private_metadata is not ours".into()))?;
            let field =
                |block: &str| text(&v, &["view", "state", "values", block, "value", "value"]).map(str::to_string);
            Ok(Interaction::Answer {
                user,
                project: meta["project"].as_str().unwrap_or("").to_string(),
                case_id: meta["case"].as_str().unwrap_or("").to_string(),
                choice: meta["choice"]
                    .as_str()
                    .and_then(Choice::parse)
                    .ok_or_else(|| PayloadError("no choice".into()))?,
                rationale: field("rationale").unwrap_or_default(),
                failure_modes: field("failure_modes")
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                args: field("args"),
            })
        }
        other => Ok(Interaction::Other(other.to_string())),
    }
}

/// The answer to a modal submission that keeps the modal open with errors
/// shown under the named inputs (`block id → message`).
pub fn modal_errors(errors: &[(&str, String)]) -> Value {
    let map: serde_json::Map<String, Value> =
        errors.iter().map(|(k, v)| (k.to_string(), Value::String(crate::message::clip(v, 2000)))).collect();
    json!({"response_action": "errors", "errors": map})
}

/// One field of a form-encoded body, decoded.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let s = std::str::from_utf8(body).ok()?;
    s.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (decode(k)? == name).then(|| decode(v)).flatten()
    })
}

fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?, 16).ok()?);
                i += 2;
            }
            b'%' => return None,
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Encode `value` for a form body (what Slack does to `payload`).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn button_clicks_and_modal_submissions_are_read() {
        let click = json!({"type": "block_actions", "user": {"id": "U1", "username": "alice", "team_id": "T1"},
            "trigger_id": "123.456.abc", "channel": {"id": "C1", "name": "soc"},
            "actions": [{"type": "button", "action_id": "arbiter:approve", "block_id": "arbiter:case", "value": "default/c1",
                         "action_ts": "1800000000.1"}]});
        let body = format!("payload={}", encode(&click.to_string()));
        assert_eq!(
            parse(body.as_bytes()).unwrap(),
            Interaction::Button {
                user: "U1".into(),
                action_id: "arbiter:approve".into(),
                value: "default/c1".into(),
                trigger_id: "123.456.abc".into(),
                channel: Some("C1".into())
            }
        );
        let submit = json!({"type": "view_submission", "user": {"id": "U1"}, "view": {"callback_id": "arbiter:answer",
            "private_metadata": "{\"project\":\"default\",\"case\":\"c1\",\"choice\":\"modify\"}",
            "state": {"values": {"rationale": {"value": {"type": "plain_text_input", "value": "network only & keep logs"}},
                                 "failure_modes": {"value": {"type": "plain_text_input", "value": "wrong_target, too_broad"}},
                                 "args": {"value": {"type": "plain_text_input", "value": "{\"host\":\"srv-1\"}"}}}}}});
        let body = format!("payload={}", encode(&submit.to_string()));
        match parse(body.as_bytes()).unwrap() {
            Interaction::Answer { choice, rationale, failure_modes, args, .. } => {
                assert_eq!(choice, Choice::Modify);
                assert_eq!(rationale, "network only & keep logs");
                assert_eq!(failure_modes, ["wrong_target", "too_broad"]);
                assert_eq!(args.as_deref(), Some("{\"host\":\"srv-1\"}"));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(b"nothing=here").is_err());
        assert!(parse(b"payload=%ZZ").is_err());
        let closed = json!({"type": "view_closed", "user": {"id": "U1"}});
        assert_eq!(
            parse(format!("payload={}", encode(&closed.to_string())).as_bytes()).unwrap(),
            Interaction::Other("view_closed".into())
        );
    }
}
