//! Property tests on generated policies and actions.
//!
//! A grammar generates conditions that compile (typed: booleans built from
//! comparisons of numbers and strings, membership, `has()`, string methods,
//! macros, with fields that may be missing or of the wrong type at run time),
//! and whole policies (several classes, `defaults`, `never` thresholds,
//! `below_threshold`, tiers, fallbacks, triggers scoped to their own class,
//! to another one, to an unlisted one, or to all). Then:
//!
//! - the indexed engine equals the naive one on random actions;
//! - both equal a model of the documented combination rule, written here
//!   from the policy as generated (not from the engine's own structures).

use crate::Policy;
use crate::cel::{self, Env};
use arbiter_core::{Escalation, HumanDuration, Severity, Tier, Verdict};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

// ------------------------------------------------------------------ conditions

const NUM_FIELDS: [&str; 4] = ["args.n", "signals.score", "context.count", "args.tags"];
const STR_FIELDS: [&str; 4] = ["args.host", "signals.kind", "context.id", "args.n"];
const WORDS: [&str; 4] = ["web", "db-1", "x", ""];

fn num_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("confidence".to_string()),
        (-3i64..10).prop_map(|n| n.to_string()),
        (0.0f64..1.0).prop_map(|x| format!("{x:.2}")),
        proptest::sample::select(&NUM_FIELDS[..]).prop_map(str::to_string),
        Just("size(args.tags)".to_string()),
        Just("size(args.host)".to_string()),
    ]
}

fn num_expr() -> impl Strategy<Value = String> {
    num_leaf().prop_recursive(2, 6, 2, |inner| {
        (inner.clone(), proptest::sample::select(&["+", "-", "*"][..]), inner)
            .prop_map(|(a, op, b)| format!("({a} {op} {b})"))
    })
}

fn str_expr() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("name".to_string()),
        Just("agent.name".to_string()),
        proptest::sample::select(&STR_FIELDS[..]).prop_map(str::to_string),
        proptest::sample::select(&WORDS[..]).prop_map(|w| format!("\"{w}\"")),
    ]
}

fn bool_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("true".to_string()),
        Just("false".to_string()),
        (num_expr(), proptest::sample::select(&["<", "<=", ">", ">=", "==", "!="][..]), num_expr())
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        (str_expr(), proptest::sample::select(&["==", "!="][..]), str_expr())
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        (str_expr(), proptest::sample::select(&WORDS[..])).prop_map(|(a, w)| format!("{a} in [\"{w}\", \"db-1\"]")),
        proptest::sample::select(&WORDS[..]).prop_map(|w| format!("\"{w}\" in args.tags")),
        proptest::sample::select(&["args.host", "signals.kind", "context.dry_run", "args.tags", "signals.score"][..])
            .prop_map(|f| format!("has({f})")),
        (
            str_expr(),
            proptest::sample::select(&["startsWith", "endsWith", "contains"][..]),
            proptest::sample::select(&WORDS[..])
        )
            .prop_map(|(s, m, w)| format!("{s}.{m}(\"{w}\")")),
        proptest::sample::select(&WORDS[..]).prop_map(|w| format!("args.tags.exists(t, t == \"{w}\")")),
        Just("args.tags.all(t, size(t) > 1)".to_string()),
        Just("context.dry_run".to_string()),
        Just("name == \"a\"".to_string()),
    ]
}

/// A condition that compiles; whether it evaluates depends on the action.
fn condition() -> impl Strategy<Value = String> {
    bool_leaf().prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
            inner.clone().prop_map(|a| format!("!({a})")),
            (inner.clone(), inner.clone(), inner).prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
        ]
    })
}

// ------------------------------------------------------------------ actions

fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..10).prop_map(|n| json!(n)),
        (0.0f64..1.0).prop_map(|x| json!(x)),
        proptest::sample::select(&WORDS[..]).prop_map(|w| json!(w)),
        any::<bool>().prop_map(|b| json!(b)),
        Just(Value::Null),
    ]
}

/// An object with some of `fields` (each maybe of the "wrong" type).
fn object(fields: &'static [&'static str]) -> impl Strategy<Value = Value> {
    proptest::collection::vec((proptest::sample::select(fields), json_scalar(), any::<bool>()), 0..4).prop_map(
        |entries| {
            let mut m = serde_json::Map::new();
            for (k, v, as_list) in entries {
                let v = if as_list && k == "tags" { json!(["web", "x", "db-1"]) } else { v };
                m.insert(k.to_string(), v);
            }
            Value::Object(m)
        },
    )
}

#[derive(Debug, Clone)]
struct GenAction {
    name: String,
    confidence: Option<f64>,
    args: Value,
    signals: Value,
    context: Value,
    agent: Value,
}

fn action() -> impl Strategy<Value = GenAction> {
    (
        proptest::sample::select(&["a", "b", "c", "d", "e"][..]),
        proptest::option::of(0.0f64..=1.0),
        object(&["host", "tags", "n"]),
        object(&["score", "kind"]),
        object(&["dry_run", "id", "count"]),
        proptest::sample::select(&["a", "x", "sandbox"][..]),
    )
        .prop_map(|(name, confidence, args, signals, context, agent)| GenAction {
            name: name.into(),
            confidence,
            args,
            signals,
            context,
            agent: json!({"name": agent, "key_id": "k"}),
        })
}

impl GenAction {
    fn env(&self) -> Env<'_> {
        Env {
            name: &self.name,
            args: &self.args,
            confidence: self.confidence,
            signals: &self.signals,
            context: &self.context,
            agent: &self.agent,
            trace_id: None,
        }
    }
}

// ------------------------------------------------------------------ policies

#[derive(Debug, Clone, Default)]
struct GenEsc {
    severity: Option<Severity>,
    reviewers: Option<BTreeSet<String>>,
    approvals: Option<u32>,
    sla: Option<u64>,
    fallback: Option<Verdict>,
    tiers: Option<Vec<Tier>>,
}

impl GenEsc {
    fn over(&self, base: &Escalation) -> Escalation {
        Escalation {
            severity: self.severity.unwrap_or(base.severity),
            reviewers: self.reviewers.clone().unwrap_or_else(|| base.reviewers.clone()),
            approvals: self.approvals.unwrap_or(base.approvals),
            sla: self.sla.map(HumanDuration).unwrap_or(base.sla),
            fallback: self.fallback.unwrap_or(base.fallback),
            tiers: self.tiers.clone().unwrap_or_else(|| base.tiers.clone()),
        }
    }

    fn yaml(&self, indent: &str) -> String {
        let mut s = String::new();
        if let Some(v) = self.severity {
            s += &format!("{indent}severity: {v}\n");
        }
        if let Some(r) = &self.reviewers {
            s += &format!("{indent}reviewers: [{}]\n", r.iter().cloned().collect::<Vec<_>>().join(", "));
        }
        if let Some(a) = self.approvals {
            s += &format!("{indent}approvals: {a}\n");
        }
        if let Some(t) = self.sla {
            s += &format!("{indent}sla: {t}s\n");
        }
        if let Some(f) = self.fallback {
            s += &format!("{indent}fallback: {f}\n");
        }
        if let Some(tiers) = &self.tiers {
            if tiers.is_empty() {
                s += &format!("{indent}tiers: []\n");
            } else {
                s += &format!("{indent}tiers:\n");
                for t in tiers {
                    let r: Vec<_> = t.reviewers.iter().cloned().collect();
                    s += &format!("{indent}  - reviewers: [{}]\n{indent}    sla: {}s\n", r.join(", "), t.sla.0);
                }
            }
        }
        s
    }
}

fn roles() -> impl Strategy<Value = BTreeSet<String>> {
    proptest::collection::btree_set(
        proptest::sample::select(&["r1", "r2", "r3", "lead"][..]).prop_map(String::from),
        1..3,
    )
}

fn gen_esc() -> impl Strategy<Value = GenEsc> {
    (
        proptest::option::of(proptest::sample::select(
            &[Severity::Low, Severity::Medium, Severity::High, Severity::Critical][..],
        )),
        proptest::option::of(roles()),
        proptest::option::of(1u32..4),
        proptest::option::of(1u64..3600),
        proptest::option::of(proptest::sample::select(&[Verdict::Allow, Verdict::Deny][..])),
        proptest::option::of(proptest::collection::vec(
            (roles(), 1u64..3600).prop_map(|(reviewers, s)| Tier { reviewers, sla: HumanDuration(s) }),
            0..3,
        )),
    )
        .prop_map(|(severity, reviewers, approvals, sla, fallback, tiers)| GenEsc {
            severity,
            reviewers,
            approvals,
            sla,
            fallback,
            tiers,
        })
}

#[derive(Debug, Clone)]
struct GenClass {
    /// None: unset; Some(None): `never`; Some(Some(t)).
    auto: Option<Option<f64>>,
    below: Option<Verdict>,
    esc: GenEsc,
}

fn gen_class() -> impl Strategy<Value = GenClass> {
    (
        proptest::option::of(proptest::option::of((0u32..=20).prop_map(|n| f64::from(n) / 20.0))),
        proptest::option::of(proptest::sample::select(&[Verdict::Escalate, Verdict::Deny][..])),
        gen_esc(),
    )
        .prop_map(|(auto, below, esc)| GenClass { auto, below, esc })
}

impl GenClass {
    fn yaml(&self, indent: &str) -> String {
        let mut s = String::new();
        match self.auto {
            Some(Some(t)) => s += &format!("{indent}auto_allow_at: {t}\n"),
            Some(None) => s += &format!("{indent}auto_allow_at: never\n"),
            None => {}
        }
        if let Some(b) = self.below {
            s += &format!("{indent}below_threshold: {b}\n");
        }
        s + &self.esc.yaml(indent)
    }
}

#[derive(Debug, Clone)]
struct GenTrigger {
    actions: Option<Vec<String>>,
    when: String,
    verdict: Verdict,
    esc: GenEsc,
}

fn gen_trigger() -> impl Strategy<Value = GenTrigger> {
    (
        proptest::option::of(proptest::sample::subsequence(&["a", "b", "c", "e"][..], 1..3)),
        condition(),
        proptest::sample::select(&[Verdict::Allow, Verdict::Escalate, Verdict::Deny][..]),
        gen_esc(),
    )
        .prop_map(|(actions, when, verdict, esc)| GenTrigger {
            actions: actions.map(|a| a.into_iter().map(String::from).collect()),
            when,
            verdict,
            esc: if verdict == Verdict::Escalate { esc } else { GenEsc::default() },
        })
}

/// Classes `a`, `b`, `c` are listed (some of them); `d` never is; `e` only
/// when a trigger names it.
#[derive(Debug, Clone)]
struct GenPolicy {
    defaults: GenClass,
    classes: Vec<(String, GenClass)>,
    triggers: Vec<GenTrigger>,
}

fn gen_policy() -> impl Strategy<Value = GenPolicy> {
    (gen_class(), proptest::collection::vec(gen_class(), 0..=3), proptest::collection::vec(gen_trigger(), 0..7))
        .prop_map(|(defaults, classes, triggers)| GenPolicy {
            defaults,
            classes: classes.into_iter().zip(["a", "b", "c"]).map(|(c, n)| (n.to_string(), c)).collect(),
            triggers,
        })
}

impl GenPolicy {
    fn yaml(&self) -> String {
        let mut s = format!("version: 1\npolicy: generated\ndefaults:\n{}", self.defaults.yaml("  "));
        if self.defaults.yaml("  ").is_empty() {
            s = "version: 1\npolicy: generated\n".to_string();
        }
        if !self.classes.is_empty() {
            s += "actions:\n";
            for (name, c) in &self.classes {
                let body = c.yaml("    ");
                s += &if body.is_empty() { format!("  {name}: {{}}\n") } else { format!("  {name}:\n{body}") };
            }
        }
        if !self.triggers.is_empty() {
            s += "triggers:\n";
            for (i, t) in self.triggers.iter().enumerate() {
                s += &format!("  - name: t{i}\n    when: '{}'\n    verdict: {}\n", t.when, t.verdict);
                if let Some(a) = &t.actions {
                    s += &format!("    actions: [{}]\n", a.join(", "));
                }
                s += &t.esc.yaml("    ");
            }
        }
        s
    }

    fn builtin() -> (Option<f64>, Verdict, Escalation) {
        (
            None,
            Verdict::Escalate,
            Escalation {
                severity: Severity::Medium,
                reviewers: ["on_call".to_string()].into_iter().collect(),
                approvals: 1,
                sla: HumanDuration(30 * 60),
                fallback: Verdict::Deny,
                tiers: vec![],
            },
        )
    }

    /// The settings of class `name` as the docs define inheritance.
    fn class(&self, name: &str) -> (Option<f64>, Verdict, Escalation) {
        let (auto, below, esc) = Self::builtin();
        let resolve = |c: &GenClass, base: (Option<f64>, Verdict, Escalation)| {
            let auto = match c.auto {
                Some(Some(t)) => Some(t),
                Some(None) => Some(f64::INFINITY),
                None => base.0,
            };
            (auto, c.below.unwrap_or(base.1), c.esc.over(&base.2))
        };
        let defaults = resolve(&self.defaults, (auto, below, esc));
        match self.classes.iter().find(|(n, _)| n == name) {
            Some((_, c)) => resolve(c, defaults),
            None => defaults,
        }
    }

    /// The documented combination rule, applied to this policy as generated.
    fn model(&self, a: &GenAction) -> (Verdict, Vec<String>, Option<Escalation>, Vec<String>) {
        let (auto, below, class_esc) = self.class(&a.name);
        let mut fired: Vec<(&GenTrigger, String)> = Vec::new();
        let mut errors = Vec::new();
        for (i, t) in self.triggers.iter().enumerate() {
            if t.actions.as_ref().is_some_and(|list| !list.contains(&a.name)) {
                continue;
            }
            match cel::compile(&t.when).expect("generated conditions compile").eval_bool(&a.env()) {
                Ok(true) => fired.push((t, format!("t{i}"))),
                Ok(false) => {}
                Err(_) => errors.push(format!("t{i}")),
            }
        }
        let threshold_met = matches!((auto, a.confidence), (Some(t), Some(c)) if c >= t);
        let strongest = fired.iter().map(|(t, _)| t.verdict).max();
        let (verdict, esc) = match strongest {
            Some(Verdict::Deny) => (Verdict::Deny, None),
            Some(Verdict::Escalate) => {
                let mut acc: Option<Escalation> = None;
                for (t, _) in fired.iter().filter(|(t, _)| t.verdict == Verdict::Escalate) {
                    let e = t.esc.over(&class_esc);
                    match &mut acc {
                        Some(x) => x.merge(&e),
                        None => acc = Some(e),
                    }
                }
                if !threshold_met && below == Verdict::Escalate {
                    acc.as_mut().unwrap().merge(&class_esc);
                }
                (Verdict::Escalate, acc)
            }
            Some(Verdict::Allow) => (Verdict::Allow, None),
            None if threshold_met => (Verdict::Allow, None),
            None => (below, (below == Verdict::Escalate).then_some(class_esc)),
        };
        (verdict, fired.into_iter().map(|(_, n)| n).collect(), esc, errors)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Generated conditions compile, and evaluate (to a value or an error) without panicking.
    #[test]
    fn generated_conditions_compile_and_evaluate(cond in condition(), a in action()) {
        let prog = cel::compile(&cond).map_err(|e| TestCaseError::fail(format!("{cond}: {e}")))?;
        let _ = prog.eval_bool(&a.env());
    }

    /// The indexed engine and the naive one agree on every generated policy and action.
    #[test]
    fn indexed_engine_equals_the_naive_one(p in gen_policy(), actions in proptest::collection::vec(action(), 1..6)) {
        let src = p.yaml();
        let policy = Policy::parse(&src).map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
        for a in &actions {
            prop_assert_eq!(policy.evaluate(&a.env()), policy.evaluate_naive(&a.env()), "{:?}\n{}", a, src);
        }
    }

    /// Verdict, fired triggers, escalation and condition errors are what the
    /// documented rule gives, computed from the policy as written.
    #[test]
    fn evaluation_follows_the_documented_rule(p in gen_policy(), actions in proptest::collection::vec(action(), 1..6)) {
        let src = p.yaml();
        let policy = Policy::parse(&src).map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
        for a in &actions {
            let got = policy.evaluate(&a.env());
            let (verdict, fired, esc, errors) = p.model(a);
            prop_assert_eq!(got.verdict, verdict, "{:?}\n{}", a, src);
            prop_assert_eq!(got.triggers.iter().map(|t| t.name.clone()).collect::<Vec<_>>(), fired, "{}", src);
            prop_assert_eq!(got.escalation, esc, "{:?}\n{}", a, src);
            prop_assert_eq!(got.condition_errors.iter().map(|e| e.trigger.clone()).collect::<Vec<_>>(), errors, "{}", src);
        }
    }

    /// Arbitrary text never panics the compiler, and what compiles evaluates without panicking.
    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,60}", a in action()) {
        if let Ok(prog) = cel::compile(&src) {
            let _ = prog.eval_bool(&a.env());
        }
    }
}

/// The generators reach what the properties are about: runtime errors, each
/// verdict, tiers, fallbacks, thresholds set to `never`, triggers scoped away.
#[test]
fn the_generators_cover_the_interesting_cases() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut errors, mut tiers, mut never, mut scoped_away) = (0, 0, 0, 0);
    let mut verdicts = std::collections::BTreeMap::new();
    for _ in 0..300 {
        let p = gen_policy().new_tree(&mut runner).unwrap().current();
        let a = action().new_tree(&mut runner).unwrap().current();
        let (verdict, _, esc, errs) = p.model(&a);
        *verdicts.entry(verdict).or_insert(0) += 1;
        errors += usize::from(!errs.is_empty());
        tiers += usize::from(esc.is_some_and(|e| !e.tiers.is_empty()));
        never += usize::from(p.classes.iter().any(|(_, c)| c.auto == Some(None)));
        scoped_away += usize::from(p.triggers.iter().any(|t| t.actions.as_ref().is_some_and(|l| !l.contains(&a.name))));
    }
    assert!(verdicts.len() == 3 && verdicts.values().all(|n| *n >= 20), "{verdicts:?}");
    for (what, n) in [("condition errors", errors), ("tiers", tiers), ("never", never), ("scoped away", scoped_away)] {
        assert!(n >= 20, "only {n} of 300 samples with {what}");
    }
}
