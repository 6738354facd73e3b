//! Reads a policy YAML tree into typed settings, collecting every error (with
//! its line, column and field path) instead of stopping at the first.

use crate::cel;
use crate::yaml::{Node, Pos};
use arbiter_core::{Escalation, HumanDuration, Severity, Tier, Verdict};
use saphyr_parser::ScalarStyle;
use std::collections::BTreeSet;
use std::fmt;

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
    /// Dotted path of the field, e.g. `triggers[3].when`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.line, self.col, self.field, self.message)
    }
}

/// Every problem found in a policy file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl PolicyErrors {
    /// Render each error on its own line, prefixed by the file name.
    pub fn render(&self, file: &str) -> String {
        self.0.iter().map(|e| format!("{file}:{e}\n")).collect()
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Escalation settings as written; unset fields inherit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EscalationSpec {
    /// `severity`
    pub severity: Option<Severity>,
    /// `reviewers`
    pub reviewers: Option<BTreeSet<String>>,
    /// `approvals`
    pub approvals: Option<u32>,
    /// `sla`
    pub sla: Option<HumanDuration>,
    /// `fallback`
    pub fallback: Option<Verdict>,
    /// `tiers`
    pub tiers: Option<Vec<Tier>>,
}

impl EscalationSpec {
    /// Fill unset fields from `base`.
    pub fn over(&self, base: &Escalation) -> Escalation {
        Escalation {
            severity: self.severity.unwrap_or(base.severity),
            reviewers: self.reviewers.clone().unwrap_or_else(|| base.reviewers.clone()),
            approvals: self.approvals.unwrap_or(base.approvals),
            sla: self.sla.unwrap_or(base.sla),
            fallback: self.fallback.unwrap_or(base.fallback),
            tiers: self.tiers.clone().unwrap_or_else(|| base.tiers.clone()),
        }
    }

    fn is_empty(&self) -> bool {
        *self == EscalationSpec::default()
    }
}

/// Settings for one action class (or the defaults).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassSpec {
    /// Confidence at or above which the action is allowed when no trigger objects.
    pub auto_allow_at: Option<f64>,
    /// Verdict below the threshold (or with no threshold): `escalate` or `deny`.
    pub below_threshold: Option<Verdict>,
    /// Escalation settings.
    pub escalation: EscalationSpec,
    /// Paths to the arguments that name what the action acts on (`args.host`), first present wins.
    pub subject: Option<Vec<String>>,
    /// Share of allowed decisions drawn at random for an after-the-fact audit (0..=1).
    pub audit_sample: Option<f64>,
    /// How soon an audit should be labelled.
    pub audit_sla: Option<HumanDuration>,
}

/// Whether `p` is a subject path: `args`, `signals` or `context`, then one or more `.field`s.
fn subject_path_ok(p: &str) -> bool {
    let mut parts = p.split('.');
    matches!(parts.next(), Some("args" | "signals" | "context"))
        && p.contains('.')
        && parts.all(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// A trigger as written.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerSpec {
    /// Unique name.
    pub name: String,
    /// Why it exists; shown when it fires.
    pub description: Option<String>,
    /// Action classes it applies to (None: inferred from the condition, or all).
    pub actions: Option<Vec<String>>,
    /// The CEL condition.
    pub when: String,
    /// Verdict when it fires.
    pub verdict: Verdict,
    /// Escalation overrides (escalate triggers only).
    pub escalation: EscalationSpec,
    /// Where the trigger starts, for messages.
    pub pos: Pos,
}

/// A whole policy document as written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicySpec {
    /// `policy`: a short name.
    pub name: String,
    /// `description`
    pub description: Option<String>,
    /// `defaults`: settings for unlisted classes and the base for listed ones.
    pub defaults: ClassSpec,
    /// `actions`: per class settings, in file order.
    pub actions: Vec<(String, ClassSpec)>,
    /// `triggers`, in file order.
    pub triggers: Vec<TriggerSpec>,
}

struct Reader<'s> {
    src: &'s str,
    errors: Vec<PolicyError>,
    /// Trigger names seen so far, to report duplicates even on invalid triggers.
    trigger_names: Vec<String>,
}

const CLASS_KEYS: &[&str] = &[
    "auto_allow_at",
    "below_threshold",
    "severity",
    "reviewers",
    "approvals",
    "sla",
    "fallback",
    "tiers",
    "subject",
    "audit_sample",
    "audit_sla",
];
const TRIGGER_KEYS: &[&str] = &[
    "name",
    "description",
    "actions",
    "when",
    "verdict",
    "severity",
    "reviewers",
    "approvals",
    "sla",
    "fallback",
    "tiers",
];

/// Read a policy document from YAML text.
pub fn read(src: &str) -> Result<PolicySpec, PolicyErrors> {
    let root = crate::yaml::parse(src).map_err(|e| {
        PolicyErrors(vec![PolicyError { line: e.pos.line, col: e.pos.col, field: "(yaml)".into(), message: e.message }])
    })?;
    let mut r = Reader { src, errors: Vec::new(), trigger_names: Vec::new() };
    let spec = r.policy(&root);
    if r.errors.is_empty() {
        Ok(spec)
    } else {
        r.errors.sort_by_key(|e| (e.line, e.col));
        Err(PolicyErrors(r.errors))
    }
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Reader<'_> {
    fn err(&mut self, pos: Pos, field: &str, message: impl Into<String>) {
        self.errors.push(PolicyError {
            line: pos.line,
            col: pos.col,
            field: field.to_string(),
            message: message.into(),
        });
    }

    fn map<'n>(&mut self, n: &'n Node, field: &str, allowed: &[&str]) -> Option<&'n [(String, Pos, Node)]> {
        match n {
            Node::Map { entries, .. } => {
                for (k, kpos, _) in entries {
                    if !allowed.contains(&k.as_str()) {
                        self.err(
                            *kpos,
                            &join(field, k),
                            format!("unknown field `{k}` (expected one of: {})", allowed.join(", ")),
                        );
                    }
                }
                Some(entries)
            }
            _ if n.is_null() => Some(&[]),
            other => {
                self.err(other.pos(), field, "expected a mapping of `key: value` pairs");
                None
            }
        }
    }

    fn str(&mut self, n: &Node, field: &str) -> Option<String> {
        match n {
            Node::Scalar { text, .. } if !n.is_null() => Some(text.clone()),
            other => {
                self.err(other.pos(), field, "expected text");
                None
            }
        }
    }

    fn parsed<T: std::str::FromStr>(&mut self, n: &Node, field: &str, what: &str) -> Option<T>
    where
        T::Err: fmt::Display,
    {
        let text = self.str(n, field)?;
        match text.parse::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = e.to_string();
                self.err(n.pos(), field, if msg.is_empty() { format!("expected {what}") } else { msg });
                None
            }
        }
    }

    fn list(&mut self, n: &Node, field: &str) -> Option<Vec<String>> {
        match n {
            Node::Seq { items, .. } => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let f = format!("{field}[{i}]");
                    if let Some(s) = self.str(item, &f) {
                        if is_ident(&s) {
                            out.push(s);
                        } else {
                            self.err(item.pos(), &f, "names may contain only letters, digits, `_`, `.` and `-`");
                        }
                    }
                }
                Some(out)
            }
            other => {
                self.err(other.pos(), field, "expected a list, e.g. `[soc_analyst, soc_lead]`");
                None
            }
        }
    }

    fn policy(&mut self, root: &Node) -> PolicySpec {
        let mut spec = PolicySpec { name: "policy".into(), ..Default::default() };
        let Some(entries) =
            self.map(root, "(root)", &["version", "policy", "description", "defaults", "actions", "triggers"])
        else {
            return spec;
        };
        for required in ["version", "policy"] {
            if !entries.iter().any(|(k, _, _)| k == required) {
                let hint = if required == "version" {
                    "start the file with `version: 1`"
                } else {
                    "name the policy, e.g. `policy: soc-triage`"
                };
                self.err(root.pos(), required, format!("missing; {hint}"));
            }
        }
        for (k, _, v) in entries {
            match k.as_str() {
                "version" if self.parsed::<u32>(v, "version", "a number").is_some_and(|n| n != 1) => {
                    self.err(v.pos(), "version", "this Arbiter reads policy format version 1");
                }
                "policy" => {
                    if let Some(s) = self.str(v, "policy") {
                        spec.name = s;
                    }
                }
                "description" => spec.description = self.str(v, "description"),
                "defaults" => spec.defaults = self.class(v, "defaults"),
                "actions" => match v {
                    Node::Map { entries: classes, .. } => {
                        for (name, kpos, cv) in classes {
                            let f = format!("actions.{name}");
                            if !is_ident(name) {
                                self.err(
                                    *kpos,
                                    &f,
                                    "action class names may contain only letters, digits, `_`, `.` and `-`",
                                );
                            }
                            let c = self.class(cv, &f);
                            spec.actions.push((name.clone(), c));
                        }
                    }
                    other if other.is_null() => {}
                    other => self.err(other.pos(), "actions", "expected a mapping from action class to its settings"),
                },
                "triggers" => match v {
                    Node::Seq { items, .. } => {
                        for (i, t) in items.iter().enumerate() {
                            if let Some(t) = self.trigger(t, &format!("triggers[{i}]")) {
                                spec.triggers.push(t);
                            }
                        }
                    }
                    other if other.is_null() => {}
                    other => self.err(other.pos(), "triggers", "expected a list of triggers"),
                },
                _ => {}
            }
        }
        spec
    }

    fn escalation_field(&mut self, esc: &mut EscalationSpec, key: &str, v: &Node, field: &str) -> bool {
        match key {
            "severity" => esc.severity = self.parsed(v, field, "a severity"),
            "reviewers" => {
                esc.reviewers = self.list(v, field).map(|l| l.into_iter().collect());
                if esc.reviewers.as_ref().is_some_and(BTreeSet::is_empty) {
                    self.err(v.pos(), field, "name at least one reviewer role");
                }
            }
            "approvals" => {
                esc.approvals = self.parsed::<u32>(v, field, "a whole number");
                if esc.approvals.is_some_and(|a| !(1..=10).contains(&a)) {
                    self.err(v.pos(), field, "approvals must be between 1 and 10");
                }
            }
            "sla" => {
                esc.sla = self.parsed(v, field, "a duration");
                if esc.sla.is_some_and(|d| d.as_secs() == 0) {
                    self.err(v.pos(), field, "the SLA must be longer than zero");
                }
            }
            "fallback" => {
                esc.fallback = self.parsed(v, field, "a verdict");
                if esc.fallback == Some(Verdict::Escalate) {
                    self.err(
                        v.pos(),
                        field,
                        "the fallback applies when nobody answered, so it must be `allow` or `deny`",
                    );
                }
            }
            "tiers" => esc.tiers = self.tiers(v, field),
            _ => return false,
        }
        true
    }

    fn tiers(&mut self, v: &Node, field: &str) -> Option<Vec<Tier>> {
        let Node::Seq { items, .. } = v else {
            self.err(v.pos(), field, "expected a list of `{reviewers: [...], sla: 30m}` tiers");
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let f = format!("{field}[{i}]");
            let Some(entries) = self.map(item, &f, &["reviewers", "sla"]) else {
                continue;
            };
            let (mut reviewers, mut sla) = (None, None);
            for (k, _, tv) in entries {
                let ff = join(&f, k);
                match k.as_str() {
                    "reviewers" => reviewers = self.list(tv, &ff),
                    "sla" => sla = self.parsed::<HumanDuration>(tv, &ff, "a duration"),
                    _ => {}
                }
            }
            match (reviewers, sla) {
                (Some(r), Some(s)) if !r.is_empty() => out.push(Tier { reviewers: r.into_iter().collect(), sla: s }),
                _ => self.err(item.pos(), &f, "each tier needs `reviewers` (non-empty) and `sla`"),
            }
        }
        Some(out)
    }

    fn class(&mut self, n: &Node, field: &str) -> ClassSpec {
        let mut c = ClassSpec::default();
        let Some(entries) = self.map(n, field, CLASS_KEYS) else {
            return c;
        };
        for (k, _, v) in entries {
            let f = join(field, k);
            match k.as_str() {
                "auto_allow_at" => {
                    if v.is_null() {
                        continue;
                    }
                    // `never`: this class never auto-allows, whatever `defaults` say.
                    if matches!(v, Node::Scalar { text, .. } if text == "never") {
                        c.auto_allow_at = Some(f64::INFINITY);
                        continue;
                    }
                    c.auto_allow_at = self.parsed::<f64>(v, &f, "a number between 0 and 1, or `never`");
                    if c.auto_allow_at.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
                        self.err(v.pos(), &f, "auto_allow_at must be between 0 and 1");
                    }
                }
                "subject" => {
                    let paths: Vec<(String, Pos)> = match v {
                        Node::Seq { items, .. } => items
                            .iter()
                            .enumerate()
                            .filter_map(|(i, it)| self.str(it, &format!("{f}[{i}]")).map(|s| (s, it.pos())))
                            .collect(),
                        other => self.str(other, &f).map(|s| vec![(s, other.pos())]).unwrap_or_default(),
                    };
                    for (path, pos) in &paths {
                        if !subject_path_ok(path) {
                            self.err(*pos, &f, format!("`{path}` is not a path such as `args.host` (args, signals or context, then field names)"));
                        }
                    }
                    c.subject = Some(paths.into_iter().map(|(p, _)| p).collect());
                }
                "audit_sample" => {
                    c.audit_sample = self.parsed::<f64>(v, &f, "a share between 0 and 1, e.g. 0.02");
                    if c.audit_sample.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
                        self.err(
                            v.pos(),
                            &f,
                            "audit_sample must be between 0 and 1 (e.g. 0.02 audits 2% of allowed decisions)",
                        );
                    }
                }
                "audit_sla" => c.audit_sla = self.parsed::<HumanDuration>(v, &f, "a duration such as 24h"),
                "below_threshold" => {
                    c.below_threshold = self.parsed(v, &f, "a verdict");
                    if c.below_threshold == Some(Verdict::Allow) {
                        self.err(
                            v.pos(),
                            &f,
                            "below_threshold must be `escalate` or `deny` (raise or drop auto_allow_at to allow more)",
                        );
                    }
                }
                _ => {
                    self.escalation_field(&mut c.escalation, k, v, &f);
                }
            }
        }
        c
    }

    fn trigger(&mut self, n: &Node, field: &str) -> Option<TriggerSpec> {
        let entries = self.map(n, field, TRIGGER_KEYS)?;
        let (mut name, mut description, mut actions, mut when, mut verdict) = (None, None, None, None, None);
        let mut esc = EscalationSpec::default();
        let mut esc_pos = None;
        for (k, kpos, v) in entries {
            let f = join(field, k);
            match k.as_str() {
                "name" => {
                    name = self.str(v, &f);
                    if let Some(s) = &name {
                        if !is_ident(s) {
                            self.err(v.pos(), &f, "trigger names may contain only letters, digits, `_`, `.` and `-`");
                        }
                        if self.trigger_names.contains(s) {
                            self.err(v.pos(), &f, format!("duplicate trigger name `{s}`"));
                        } else {
                            self.trigger_names.push(s.clone());
                        }
                    }
                }
                "description" => description = self.str(v, &f),
                "actions" => actions = self.list(v, &f),
                "verdict" => verdict = self.parsed::<Verdict>(v, &f, "a verdict"),
                "when" => {
                    let Some(text) = self.str(v, &f) else {
                        continue;
                    };
                    if let Err(e) = cel::compile(&text) {
                        let pos = self.locate(v, &text, e.span.start);
                        self.err(pos, &f, format!("invalid condition: {}", e.message));
                    }
                    when = Some(text);
                }
                _ => {
                    self.escalation_field(&mut esc, k, v, &f);
                    esc_pos.get_or_insert((*kpos, f));
                }
            }
        }
        let pos = n.pos();
        // A key that is present but invalid was reported already; only report absent ones.
        let present = |key: &str| entries.iter().any(|(k, _, _)| k == key);
        let (Some(name), Some(when), Some(verdict)) = (name, when, verdict) else {
            for (key, message) in [
                ("name", "every trigger needs a `name`"),
                ("when", "every trigger needs a `when` condition"),
                ("verdict", "every trigger needs a `verdict`: allow, escalate or deny"),
            ] {
                if !present(key) {
                    self.err(pos, &join(field, key), message);
                }
            }
            return None;
        };
        if verdict != Verdict::Escalate
            && !esc.is_empty()
            && let Some((p, f)) = esc_pos
        {
            self.err(
                p,
                &f,
                format!("escalation settings only apply to `verdict: escalate` triggers, this one is `{verdict}`"),
            );
        }
        Some(TriggerSpec { name, description, actions, when, verdict, escalation: esc, pos })
    }

    /// Map an offset inside a scalar's text to a file position.
    fn locate(&self, n: &Node, text: &str, offset: usize) -> Pos {
        let Node::Scalar { style, pos, .. } = n else {
            return n.pos();
        };
        // the offset may fall inside a character (an error at a multi-byte one): back to its start
        let mut end = offset.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &text[..end];
        match style {
            ScalarStyle::Literal | ScalarStyle::Folded => {
                // Block scalars start on the next line; find its indentation in the source.
                let line_no = pos.line + 1 + before.matches('\n').count();
                let indent = self.src.lines().nth(line_no - 1).map(|l| l.len() - l.trim_start().len()).unwrap_or(0);
                let col = before.rsplit('\n').next().map(|s| s.chars().count()).unwrap_or(0);
                Pos { line: line_no, col: indent + col + 1 }
            }
            _ if !before.contains('\n') => {
                let quote = usize::from(!matches!(style, ScalarStyle::Plain));
                Pos { line: pos.line, col: pos.col + quote + before.chars().count() }
            }
            _ => *pos,
        }
    }
}

fn join(field: &str, key: &str) -> String {
    if field == "(root)" { key.to_string() } else { format!("{field}.{key}") }
}
