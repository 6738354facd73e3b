//! Rewriting a policy file's thresholds in place: comments, order and
//! everything else stay as the author wrote them.

use crate::yaml::{self, Node};
use crate::{Policy, PolicyErrors};
use std::collections::BTreeMap;

/// Why a rewrite failed.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// The source does not compile.
    #[error("the policy has errors:\n{0}")]
    Invalid(PolicyErrors),
    /// The file uses a layout this rewriter does not edit (flow style).
    #[error("{0}; edit `auto_allow_at` by hand")]
    Layout(String),
}

fn get<'n>(n: &'n Node, key: &str) -> Option<(&'n yaml::Pos, &'n Node)> {
    match n {
        Node::Map { entries, .. } => entries.iter().find(|(k, _, _)| k == key).map(|(_, p, v)| (p, v)),
        _ => None,
    }
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Format a threshold the way the policy engine reads it back identically.
pub fn format_threshold(t: f64) -> String {
    let s = format!("{t}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// Set `auto_allow_at` of each class in `thresholds` (`None`: `never`, the
/// class never auto-allows) and return the new source. Classes the file does
/// not list are added under `actions:`. The result is parsed again and checked.
pub fn with_thresholds(source: &str, thresholds: &BTreeMap<String, Option<f64>>) -> Result<String, RewriteError> {
    Policy::parse(source).map_err(RewriteError::Invalid)?;
    let root = yaml::parse(source).map_err(|e| RewriteError::Layout(format!("cannot read the YAML: {}", e.message)))?;
    let mut lines: Vec<String> = source.lines().map(str::to_string).collect();
    // (line index, kind) edits applied bottom-up: Replace(col, old, new), Delete, Insert(text lines)
    enum Edit {
        Replace(usize, String, String),
        Insert(Vec<String>),
    }
    let mut edits: Vec<(usize, usize, Edit)> = Vec::new(); // (line, order, edit)
    let actions = get(&root, "actions");
    let mut appended: Vec<String> = Vec::new();
    for (order, (class, t)) in thresholds.iter().enumerate() {
        let value = Some(t.map_or_else(|| "never".to_string(), format_threshold));
        match actions {
            None => {
                if let Some(v) = &value {
                    appended.push(format!("  {class}:"));
                    appended.push(format!("    auto_allow_at: {v}"));
                }
            }
            Some((akey, anode)) => {
                let entry = match anode {
                    Node::Map { entries, .. } => entries.iter().find(|(k, _, _)| k == class),
                    n if n.is_null() => None,
                    _ => {
                        return Err(RewriteError::Layout("`actions` is not a block mapping".into()));
                    }
                };
                match entry {
                    None => {
                        let Some(v) = &value else { continue };
                        let ind = match anode {
                            Node::Map { entries, .. } if !entries.is_empty() => entries[0].1.col - 1,
                            _ => akey.col - 1 + 2,
                        };
                        let pad = " ".repeat(ind);
                        edits.push((
                            akey.line,
                            order,
                            Edit::Insert(vec![format!("{pad}{class}:"), format!("{pad}  auto_allow_at: {v}")]),
                        ));
                    }
                    Some((_, kpos, cnode)) => match (get(cnode, "auto_allow_at"), cnode) {
                        (Some((_, Node::Scalar { text, pos, .. })), _) => {
                            let line = &lines[pos.line - 1];
                            if !line[pos.col - 1..].starts_with(text.as_str()) {
                                return Err(RewriteError::Layout(format!(
                                    "line {}: `auto_allow_at` is not a plain number",
                                    pos.line
                                )));
                            }
                            if let Some(v) = &value {
                                edits.push((pos.line - 1, order, Edit::Replace(pos.col - 1, text.clone(), v.clone())));
                            }
                        }
                        (Some(_), _) => {
                            return Err(RewriteError::Layout(format!("`{class}.auto_allow_at` is not a number")));
                        }
                        (None, Node::Map { entries, .. }) if !entries.is_empty() => {
                            let Some(v) = &value else { continue };
                            let first = &entries[0].1;
                            if indent_of(&lines[first.line - 1]) != first.col - 1 {
                                return Err(RewriteError::Layout(format!("`{class}` is written in flow style")));
                            }
                            let pad = " ".repeat(first.col - 1);
                            edits.push((first.line - 1, order, Edit::Insert(vec![format!("{pad}auto_allow_at: {v}")])));
                        }
                        (None, n) if n.is_null() => {
                            let Some(v) = &value else { continue };
                            let pad = " ".repeat(kpos.col - 1 + 2);
                            edits.push((kpos.line, order, Edit::Insert(vec![format!("{pad}auto_allow_at: {v}")])));
                        }
                        _ => {
                            return Err(RewriteError::Layout(format!("`{class}` is written in flow style")));
                        }
                    },
                }
            }
        }
    }
    edits.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    for (line, _, edit) in edits {
        match edit {
            Edit::Replace(col, old, new) => lines[line].replace_range(col..col + old.len(), &new),
            Edit::Insert(new) => {
                for (i, l) in new.into_iter().enumerate() {
                    lines.insert(line + i, l);
                }
            }
        }
    }
    if !appended.is_empty() {
        lines.push("actions:".into());
        lines.extend(appended);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    let check = Policy::parse(&out).map_err(RewriteError::Invalid)?;
    for (class, t) in thresholds {
        let got = check.class_config(class).auto_allow_at;
        if got != Some(t.unwrap_or(f64::INFINITY)) {
            return Err(RewriteError::Layout(format!("could not set `{class}` to {t:?} (the file now gives {got:?})")));
        }
    }
    Ok(out)
}

/// A trigger to add to a policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTrigger {
    /// Its unique name.
    pub name: String,
    /// Why it exists.
    pub description: String,
    /// The action classes it applies to.
    pub actions: Vec<String>,
    /// Its condition.
    pub when: String,
    /// Its verdict.
    pub verdict: arbiter_core::Verdict,
}

/// A YAML single-quoted scalar.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl NewTrigger {
    /// The trigger as the lines of one YAML mapping (no indentation, no dash).
    pub fn yaml_lines(&self) -> Vec<String> {
        let actions: Vec<String> = self.actions.iter().map(|a| quoted(a)).collect();
        vec![
            format!("name: {}", self.name),
            format!("description: {}", quoted(&self.description)),
            format!("actions: [{}]", actions.join(", ")),
            format!("when: {}", quoted(&self.when)),
            format!("verdict: {}", self.verdict.as_str()),
        ]
    }
}

/// Append `trigger` to the file's `triggers:` list (after its last item,
/// with the list's own indentation), or add the list; everything else stays
/// as written. The result is parsed again and must contain the trigger.
pub fn with_trigger(source: &str, trigger: &NewTrigger) -> Result<String, RewriteError> {
    let parsed = Policy::parse(source).map_err(RewriteError::Invalid)?;
    if parsed.trigger_names().any(|n| n == trigger.name) {
        return Err(RewriteError::Layout(format!("the policy already has a trigger named `{}`", trigger.name)));
    }
    let root = yaml::parse(source).map_err(|e| RewriteError::Layout(format!("cannot read the YAML: {}", e.message)))?;
    let mut lines: Vec<String> = source.lines().map(str::to_string).collect();
    let item = trigger.yaml_lines();
    let Node::Map { entries, .. } = &root else {
        return Err(RewriteError::Layout("the policy is not a mapping".into()));
    };
    let at = entries.iter().position(|(k, _, _)| k == "triggers");
    match at.map(|i| (i, &entries[i])) {
        None => {
            while lines.last().is_some_and(|l| l.trim().is_empty()) {
                lines.pop();
            }
            lines.push("triggers:".into());
            lines.push(format!("  - {}", item[0]));
            lines.extend(item[1..].iter().map(|l| format!("    {l}")));
        }
        Some((i, (_, kpos, node))) => {
            let (dash, end) = match node {
                Node::Seq { items, .. } if !items.is_empty() => {
                    let first = items[0].pos();
                    let line = &lines[first.line - 1];
                    let Some(dash) = line[..first.col - 1].rfind('-') else {
                        return Err(RewriteError::Layout("`triggers` is written in flow style".into()));
                    };
                    // the list ends before the next top-level key (or at the end of the file)
                    let mut end = entries.get(i + 1).map_or(lines.len(), |(_, p, _)| p.line - 1);
                    while end > first.line
                        && lines[end - 1].trim().is_empty() | lines[end - 1].trim_start().starts_with('#')
                    {
                        end -= 1;
                    }
                    (dash, end)
                }
                n if n.is_null() => (kpos.col - 1 + 2, kpos.line),
                _ => return Err(RewriteError::Layout("`triggers` is written in flow style".into())),
            };
            let pad = " ".repeat(dash);
            let mut new = vec![format!("{pad}- {}", item[0])];
            new.extend(item[1..].iter().map(|l| format!("{pad}  {l}")));
            for (k, l) in new.into_iter().enumerate() {
                lines.insert(end + k, l);
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    let check = Policy::parse(&out).map_err(RewriteError::Invalid)?;
    if !check.trigger_names().any(|n| n == trigger.name) {
        return Err(RewriteError::Layout("the new trigger did not land in `triggers`".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "# header comment\nversion: 1\npolicy: p\ndefaults:\n  auto_allow_at: 0.99\nactions:\n  close_alert:\n    auto_allow_at: 0.90   # keep this comment\n    severity: low\n  block_ip:\n    severity: medium\n  open_ticket:\ntriggers: []\n";

    fn set(pairs: &[(&str, Option<f64>)]) -> BTreeMap<String, Option<f64>> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn replaces_inserts_adds_and_removes_keeping_comments() {
        let out = with_thresholds(
            SRC,
            &set(&[
                ("close_alert", Some(0.937)),
                ("block_ip", Some(0.5)),
                ("open_ticket", Some(0.25)),
                ("isolate_host", Some(0.999)),
            ]),
        )
        .unwrap();
        assert!(out.contains("    auto_allow_at: 0.937   # keep this comment\n"), "{out}");
        assert!(out.starts_with("# header comment\n"));
        let p = Policy::parse(&out).unwrap();
        assert_eq!(p.class_config("block_ip").auto_allow_at, Some(0.5));
        assert_eq!(p.class_config("open_ticket").auto_allow_at, Some(0.25));
        assert_eq!(p.class_config("isolate_host").auto_allow_at, Some(0.999));
        assert_eq!(
            p.class_config("block_ip").escalation.severity,
            arbiter_core::Severity::Medium,
            "other settings stay"
        );
        // no threshold: `never`, which overrides the defaults' 0.99
        let out = with_thresholds(SRC, &set(&[("close_alert", None)])).unwrap();
        assert!(out.contains("    auto_allow_at: never   # keep this comment\n"), "{out}");
        let p = Policy::parse(&out).unwrap();
        let (args, empty) = (serde_json::json!({}), serde_json::json!({}));
        let env = crate::cel::Env {
            name: "close_alert",
            args: &args,
            confidence: Some(1.0),
            signals: &empty,
            context: &empty,
            agent: &empty,
            trace_id: None,
        };
        assert_eq!(p.evaluate(&env).verdict, arbiter_core::Verdict::Escalate);
    }

    #[test]
    fn a_file_without_actions_gets_them() {
        let out = with_thresholds("version: 1\npolicy: p\n", &set(&[("a", Some(0.8))])).unwrap();
        assert_eq!(Policy::parse(&out).unwrap().class_config("a").auto_allow_at, Some(0.8));
    }

    #[test]
    fn flow_style_is_refused_not_mangled() {
        let src = "version: 1\npolicy: p\nactions:\n  a: {severity: low}\n";
        assert!(matches!(with_thresholds(src, &set(&[("a", Some(0.5))])), Err(RewriteError::Layout(_))));
    }

    #[test]
    fn the_soc_policy_rewrites_cleanly() {
        let src = include_str!("../../../examples/policies/soc.yaml");
        let out = with_thresholds(
            src,
            &set(&[("isolate_host", Some(0.97)), ("close_alert", Some(0.85)), ("new_tool", Some(0.6))]),
        )
        .unwrap();
        let (a, b) = (Policy::parse(src).unwrap(), Policy::parse(&out).unwrap());
        assert_eq!(a.trigger_count(), b.trigger_count());
        assert_eq!(b.class_config("isolate_host").auto_allow_at, Some(0.97));
        assert_eq!(out.lines().count(), src.lines().count() + 2);
    }

    fn confirm(name: &str) -> NewTrigger {
        NewTrigger {
            name: name.into(),
            description: "Isolations need the analyst's confirmation (it's a tool change)".into(),
            actions: vec!["isolate_host".into()],
            when: r#"!(has(signals.confirmed) && signals.confirmed == true)"#.into(),
            verdict: arbiter_core::Verdict::Escalate,
        }
    }

    #[test]
    fn a_trigger_is_appended_to_the_list_and_nothing_else_moves() {
        let soc = include_str!("../../../examples/policies/soc.yaml");
        let out = with_trigger(soc, &confirm("require_confirmation")).unwrap();
        assert!(out.starts_with(soc.trim_end_matches('\n')), "the original text is kept as it was");
        assert!(
            out.contains(
                "  - name: require_confirmation\n    description: 'Isolations need the analyst''s confirmation"
            ),
            "{out}"
        );
        let p = Policy::parse(&out).unwrap();
        assert_eq!(p.trigger_count(), Policy::parse(soc).unwrap().trigger_count() + 1);
        let (args, signals, empty) = (
            serde_json::json!({"host": "ws-1", "host_tags": ["workstation"]}),
            serde_json::json!({}),
            serde_json::json!({}),
        );
        let env = |signals| crate::cel::Env {
            name: "isolate_host",
            args: &args,
            confidence: Some(0.999),
            signals,
            context: &empty,
            agent: &empty,
            trace_id: None,
        };
        let fired = p.evaluate(&env(&signals)).triggers.iter().any(|t| t.name == "require_confirmation");
        assert!(fired);
        let confirmed = serde_json::json!({"confirmed": true});
        assert!(!p.evaluate(&env(&confirmed)).triggers.iter().any(|t| t.name == "require_confirmation"));
        assert!(
            matches!(with_trigger(&out, &confirm("require_confirmation")), Err(RewriteError::Layout(m)) if m.contains("already"))
        );
    }

    #[test]
    fn a_policy_without_triggers_gets_the_list() {
        for src in [
            "version: 1\npolicy: p\n",
            "version: 1\npolicy: p\ntriggers:\nactions:\n  isolate_host:\n    auto_allow_at: 0.9\n",
        ] {
            let out = with_trigger(src, &confirm("c")).unwrap();
            assert_eq!(Policy::parse(&out).unwrap().trigger_count(), 1, "{out}");
        }
        let flow = "version: 1\npolicy: p\ntriggers: [{name: a, when: 'true', verdict: deny}]\n";
        assert!(matches!(with_trigger(flow, &confirm("c")), Err(RewriteError::Layout(_))));
    }
}
