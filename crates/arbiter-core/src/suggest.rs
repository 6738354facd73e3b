//! Standing-rule suggestions: situations in which people always answered an
//! escalated action the same way. Each pattern is one or two conditions on
//! the action's categorical arguments and signals (`signals.alert_type ==
//! "ransomware"`, `"workstation" in args.host_tags`), seen at least
//! `min_support` times, every time approved unchanged or every time refused.
//! A pattern becomes a suggested trigger; the policy crate backtests it and
//! writes it into a draft version.

use crate::decision::Decision;
use crate::insight::SUBJECT_KEYS;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One condition on an action.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Atom {
    /// `args` or `signals`.
    pub root: String,
    /// The field.
    pub field: String,
    /// Equality with a string or boolean, or membership of a string in a list.
    pub test: AtomTest,
}

/// How an [`Atom`] tests its field.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op", content = "value")]
pub enum AtomTest {
    /// `field == "value"`.
    EqualsText(String),
    /// `field == true/false`.
    EqualsBool(bool),
    /// `"value" in field`.
    Contains(String),
}

/// A number the policy language reads back as a double.
fn number(t: f64) -> String {
    let s = format!("{t}");
    if s.contains('.') || s.contains('e') { s } else { format!("{s}.0") }
}

fn cel_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn cel_field(root: &str, field: &str) -> String {
    if field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !field.starts_with(|c: char| c.is_ascii_digit())
    {
        format!("{root}.{field}")
    } else {
        format!("{root}[{}]", cel_string(field))
    }
}

impl Atom {
    /// The condition in the policy language, guarded with `has()`.
    pub fn cel(&self) -> String {
        let f = cel_field(&self.root, &self.field);
        let has =
            if f.contains('[') { format!("{} in {}", cel_string(&self.field), self.root) } else { format!("has({f})") };
        match &self.test {
            AtomTest::EqualsText(v) => format!("{has} && {f} == {}", cel_string(v)),
            AtomTest::EqualsBool(b) => format!("{has} && {f} == {b}"),
            AtomTest::Contains(v) => format!("{has} && {} in {f}", cel_string(v)),
        }
    }

    /// The condition for people: `alert_type == "ransomware"`, `host_tags containing "workstation"`.
    pub fn describe(&self) -> String {
        match &self.test {
            AtomTest::EqualsText(v) => format!("{} == {}", self.field, cel_string(v)),
            AtomTest::EqualsBool(b) => format!("{} == {b}", self.field),
            AtomTest::Contains(v) => format!("{} containing {}", self.field, cel_string(v)),
        }
    }
}

/// The conditions an action satisfies (its categorical fields; subjects such
/// as host names are left out, so a rule generalizes).
pub fn atoms(args: &Value, signals: &Value) -> BTreeSet<Atom> {
    let mut out = BTreeSet::new();
    for (root, v) in [("args", args), ("signals", signals)] {
        let Some(m) = v.as_object() else { continue };
        for (k, x) in m {
            if root == "args" && SUBJECT_KEYS.contains(&k.as_str()) {
                continue;
            }
            let mut push = |test| out.insert(Atom { root: root.into(), field: k.clone(), test });
            match x {
                Value::String(s) if s.len() <= 64 => {
                    push(AtomTest::EqualsText(s.clone()));
                }
                Value::Bool(b) => {
                    push(AtomTest::EqualsBool(*b));
                }
                Value::Array(items) if items.len() <= 20 => {
                    for s in items.iter().filter_map(Value::as_str).filter(|s| s.len() <= 64) {
                        push(AtomTest::Contains(s.to_string()));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// How people answered every time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unanimous {
    /// Approved as proposed, every time.
    Approved,
    /// Refused, every time.
    Rejected,
}

/// One reviewed decision, as mining sees it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The decision.
    pub decision: &'a Decision,
    /// `Some(Approved)` for an unchanged approval, `Some(Rejected)` for a refusal, `None` for a modification.
    pub answer: Option<Unanimous>,
}

impl<'a> Observation<'a> {
    /// How people answered `d`, if they did.
    pub fn of(d: &'a Decision) -> Option<Observation<'a>> {
        let fin = d.final_verdict.as_ref().filter(|f| f.source == crate::decision::FinalSource::Review)?;
        let answer = match (fin.verdict, fin.action.is_some()) {
            (Verdict::Deny, _) => Some(Unanimous::Rejected),
            (_, false) => Some(Unanimous::Approved),
            (_, true) => None,
        };
        Some(Observation { decision: d, answer })
    }
}

/// A situation always answered the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pattern {
    /// The action class.
    pub action: String,
    /// Its conditions (one or two).
    pub atoms: Vec<Atom>,
    /// How people answered.
    pub answer: Unanimous,
    /// How many times.
    pub support: u64,
    /// The lowest confidence the agent gave among them (an allow rule keeps to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_confidence: Option<f64>,
    /// Up to five of the decisions.
    pub examples: Vec<String>,
}

impl Pattern {
    /// `isolate_host with host_tags containing "workstation" and alert_type == "ransomware"
    /// was approved 41 of 41 times`.
    pub fn describe(&self) -> String {
        let conds: Vec<String> = self.atoms.iter().map(Atom::describe).collect();
        let how = match self.answer {
            Unanimous::Approved => "approved unchanged",
            Unanimous::Rejected => "refused",
        };
        format!("`{}` with {} was {how} {} of {} times", self.action, conds.join(" and "), self.support, self.support)
    }

    /// The trigger's condition.
    pub fn condition(&self) -> String {
        let mut parts: Vec<String> = self.atoms.iter().map(|a| format!("({})", a.cel())).collect();
        if self.answer == Unanimous::Approved {
            // an allow rule reads the agent's confidence too: agent-supplied fields alone would let it allow itself
            let floor = self.min_confidence.unwrap_or(1.0);
            parts.push(format!("confidence != null && confidence >= {}", number(floor)));
        }
        parts.join(" && ")
    }

    /// The verdict the trigger gives.
    pub fn verdict(&self) -> Verdict {
        match self.answer {
            Unanimous::Approved => Verdict::Allow,
            Unanimous::Rejected => Verdict::Deny,
        }
    }

    /// A stable key: the same situation is suggested once.
    pub fn fingerprint(&self) -> String {
        let mut atoms: Vec<String> = self.atoms.iter().map(|a| a.cel()).collect();
        atoms.sort();
        format!("{}|{:?}|{}", self.action, self.answer, atoms.join("&"))
    }
}

#[derive(Default)]
struct Tally<'a> {
    approved: u64,
    rejected: u64,
    other: u64,
    min_conf: Option<f64>,
    examples: Vec<&'a str>,
}

impl<'a> Tally<'a> {
    fn add(&mut self, o: &Observation<'a>) {
        match o.answer {
            Some(Unanimous::Approved) => self.approved += 1,
            Some(Unanimous::Rejected) => self.rejected += 1,
            None => self.other += 1,
        }
        if let Some(c) = o.decision.action.confidence {
            self.min_conf = Some(self.min_conf.map_or(c, |m: f64| m.min(c)));
        }
        if self.examples.len() < 5 {
            self.examples.push(&o.decision.id);
        }
    }

    fn unanimous(&self, min_support: u64) -> Option<Unanimous> {
        let n = self.approved + self.rejected + self.other;
        if n < min_support {
            None
        } else if self.approved == n {
            Some(Unanimous::Approved)
        } else if self.rejected == n {
            Some(Unanimous::Rejected)
        } else {
            None
        }
    }
}

/// The patterns in `observations`: single conditions first; a pair only when
/// neither of its conditions is unanimous alone. Most supported first, at most `limit`.
pub fn mine(observations: &[Observation<'_>], min_support: u64, limit: usize) -> Vec<Pattern> {
    let mut by_class: BTreeMap<&str, Vec<(&Observation<'_>, Vec<Atom>)>> = BTreeMap::new();
    for o in observations {
        let a: Vec<Atom> = atoms(&o.decision.action.args, &o.decision.action.signals).into_iter().collect();
        by_class.entry(o.decision.action.name.as_str()).or_default().push((o, a));
    }
    let mut out = Vec::new();
    for (class, obs) in &by_class {
        let mut singles: BTreeMap<&Atom, Tally<'_>> = BTreeMap::new();
        for (o, atoms) in obs {
            for a in atoms {
                singles.entry(a).or_default().add(o);
            }
        }
        let mut settled: BTreeSet<&Atom> = BTreeSet::new();
        let mut frequent: BTreeSet<&Atom> = BTreeSet::new();
        for (a, t) in &singles {
            if let Some(answer) = t.unanimous(min_support) {
                settled.insert(*a);
                out.push(pattern(class, vec![(*a).clone()], answer, t));
            } else if t.approved + t.rejected + t.other >= min_support {
                frequent.insert(*a);
            }
        }
        let mut pairs: BTreeMap<(&Atom, &Atom), Tally<'_>> = BTreeMap::new();
        for (o, atoms) in obs {
            let mine: Vec<&Atom> = atoms.iter().filter(|a| frequent.contains(a)).collect();
            for (i, a) in mine.iter().enumerate() {
                for b in &mine[i + 1..] {
                    pairs.entry((*a, *b)).or_default().add(o);
                }
            }
        }
        for ((a, b), t) in &pairs {
            if settled.contains(a) || settled.contains(b) || a.field == b.field && a.root == b.root {
                continue;
            }
            if let Some(answer) = t.unanimous(min_support) {
                out.push(pattern(class, vec![(*a).clone(), (*b).clone()], answer, t));
            }
        }
    }
    out.sort_by(|a, b| b.support.cmp(&a.support).then(a.atoms.len().cmp(&b.atoms.len())).then(a.action.cmp(&b.action)));
    out.truncate(limit);
    out
}

fn pattern(class: &str, atoms: Vec<Atom>, answer: Unanimous, t: &Tally<'_>) -> Pattern {
    Pattern {
        action: class.to_string(),
        atoms,
        answer,
        support: t.approved + t.rejected + t.other,
        min_confidence: t.min_conf,
        examples: t.examples.iter().map(|s| s.to_string()).collect(),
    }
}

wire_names!(SuggestionState { Open => "open", Accepted => "accepted", Dismissed => "dismissed" });

/// Where a suggestion is. An open one past its expiry is no longer offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionState {
    /// Waiting for an admin.
    Open,
    /// Accepted: a draft policy version carries it.
    Accepted,
    /// Dismissed; not offered again until it expires.
    Dismissed,
}

/// What the suggested trigger would have done on history.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SuggestionBacktest {
    /// Decisions replayed.
    pub replayed: u64,
    /// Escalations the trigger would have answered automatically.
    pub escalations_saved: u64,
    /// Of the decisions it would have answered, those people answered the other way
    /// (allowed although a reviewer refused, or denied although a reviewer approved).
    pub against_reviewers: u64,
    /// Up to five of those.
    pub examples_against: Vec<String>,
}

/// A standing rule Arbiter suggests from how people answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// Time-ordered unique id.
    pub id: String,
    /// The same situation is suggested once ([`Pattern::fingerprint`]).
    pub fingerprint: String,
    /// What people did.
    pub pattern: Pattern,
    /// `isolate_host with … was approved unchanged 41 of 41 times in 30 days`.
    pub description: String,
    /// The suggested trigger's name.
    pub trigger: String,
    /// Its condition.
    pub condition: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// The trigger as policy YAML (one list item under `triggers:`).
    pub yaml: String,
    /// The policy version it was computed against.
    pub base_policy: String,
    /// What it would have done.
    pub backtest: SuggestionBacktest,
    /// Days of history mined.
    pub window_days: u32,
    /// When it was found.
    pub created_at: crate::time::Timestamp,
    /// When it stops being offered.
    pub expires_at: crate::time::Timestamp,
    /// Where it is.
    pub state: SuggestionState,
    /// The draft policy version carrying it, once accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_policy: Option<String>,
    /// Who accepted or dismissed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
}

impl Suggestion {
    /// Still offered at `now`.
    pub fn is_open(&self, now: crate::time::Timestamp) -> bool {
        self.state == SuggestionState::Open && now < self.expires_at
    }
}
