//! The compiled policy: triggers indexed by action class, escalation settings
//! resolved ahead of time, and the combination rule that turns fired triggers
//! and the confidence threshold into a verdict.

use crate::cel::{self, Env, Program};
use crate::document::{self, ClassSpec, PolicyError, PolicyErrors, PolicySpec};
use arbiter_core::{Escalation, FiredTrigger, HumanDuration, Severity, Verdict};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Settings for one action class after defaults are applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassConfig {
    /// Confidence at or above which the action is allowed when no trigger objects.
    pub auto_allow_at: Option<f64>,
    /// Verdict below the threshold: `escalate` or `deny`.
    pub below_threshold: Verdict,
    /// Escalation settings when the threshold (or a trigger without overrides) escalates.
    pub escalation: Escalation,
    /// Paths naming what the action acts on (`args.host`); empty: Arbiter's default argument names.
    pub subject: Vec<String>,
    /// Share of the decisions this class allows that are drawn for audit (0: none).
    pub audit_sample: f64,
    /// How soon a drawn decision is to be labelled.
    pub audit_sla: HumanDuration,
}

impl ClassConfig {
    /// The audit sampling of the decisions this class allows, if it samples any.
    pub fn audit_plan(&self) -> Option<arbiter_core::sampling::AuditPlan> {
        (self.audit_sample > 0.0)
            .then_some(arbiter_core::sampling::AuditPlan { sample: self.audit_sample, sla: self.audit_sla })
    }
}

#[derive(Debug)]
struct Trigger {
    name: String,
    reason: String,
    verdict: Verdict,
    actions: Option<Vec<String>>,
    program: Program,
}

/// The triggers that can fire for one action class, in policy order, each with
/// its escalation resolved against the class settings.
#[derive(Debug)]
struct ClassIndex {
    config: ClassConfig,
    triggers: Vec<(usize, Escalation)>,
}

/// A compiled, immutable policy version.
#[derive(Debug)]
pub struct Policy {
    name: String,
    hash: String,
    source: String,
    triggers: Vec<Trigger>,
    classes: HashMap<String, ClassIndex>,
    unlisted: ClassIndex,
    warnings: Vec<PolicyError>,
}

pub use arbiter_core::decision::{ConditionError, Evaluation};

fn builtin_defaults() -> ClassConfig {
    ClassConfig {
        auto_allow_at: None,
        below_threshold: Verdict::Escalate,
        escalation: Escalation {
            severity: Severity::Medium,
            reviewers: ["on_call".to_string()].into_iter().collect(),
            approvals: 1,
            sla: HumanDuration(30 * 60),
            fallback: Verdict::Deny,
            tiers: Vec::new(),
        },
        subject: Vec::new(),
        audit_sample: 0.0,
        audit_sla: DEFAULT_AUDIT_SLA,
    }
}

/// How soon an audit is to be labelled when the policy does not say (`audit_sla`).
pub const DEFAULT_AUDIT_SLA: HumanDuration = HumanDuration(24 * 3600);

fn resolve(spec: &ClassSpec, base: &ClassConfig) -> ClassConfig {
    ClassConfig {
        auto_allow_at: spec.auto_allow_at.or(base.auto_allow_at),
        below_threshold: spec.below_threshold.unwrap_or(base.below_threshold),
        escalation: spec.escalation.over(&base.escalation),
        subject: spec.subject.clone().unwrap_or_else(|| base.subject.clone()),
        audit_sample: spec.audit_sample.unwrap_or(base.audit_sample),
        audit_sla: spec.audit_sla.unwrap_or(base.audit_sla),
    }
}

/// What the action acts on, as `field:value`: the first of the class's
/// `subject` paths that names a string or number, else Arbiter's default
/// argument names ([`arbiter_core::insight::subject`]).
fn subject_of(config: &ClassConfig, env: &Env<'_>) -> Option<String> {
    if config.subject.is_empty() {
        return arbiter_core::insight::subject_in(env.args);
    }
    config.subject.iter().find_map(|path| {
        let mut parts = path.split('.');
        let mut v = match parts.next()? {
            "args" => env.args,
            "signals" => env.signals,
            "context" => env.context,
            _ => return None,
        };
        let mut last = "";
        for f in parts {
            v = v.get(f)?;
            last = f;
        }
        match v {
            serde_json::Value::String(s) if !s.is_empty() => Some(format!("{last}:{s}")),
            serde_json::Value::Number(n) => Some(format!("{last}:{n}")),
            _ => None,
        }
    })
}

/// Variables whose value the agent chooses when it proposes an action. A
/// condition that reads only these is the agent's own say-so.
const AGENT_SUPPLIED: [cel::Root; 5] =
    [cel::Root::Args, cel::Root::Signals, cel::Root::Context, cel::Root::Name, cel::Root::TraceId];

/// The content hash of a policy source: hex SHA-256 of its bytes.
pub fn content_hash(source: &str) -> String {
    hex::encode(Sha256::digest(source.as_bytes()))
}

impl Policy {
    /// Parse, check and compile a policy from YAML text.
    pub fn parse(source: &str) -> Result<Policy, PolicyErrors> {
        let spec = document::read(source)?;
        Policy::compile(spec, source)
    }

    fn compile(spec: PolicySpec, source: &str) -> Result<Policy, PolicyErrors> {
        let defaults = resolve(&spec.defaults, &builtin_defaults());
        let mut triggers = Vec::with_capacity(spec.triggers.len());
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        for t in &spec.triggers {
            match cel::compile(&t.when) {
                Ok(program) => {
                    if t.verdict == Verdict::Allow && program.roots().iter().all(|r| AGENT_SUPPLIED.contains(r)) {
                        warnings.push(PolicyError {
                            line: t.pos.line,
                            col: t.pos.col,
                            field: format!("triggers.{}.when", t.name),
                            message: "this `allow` trigger reads only what the agent itself sends (args, signals, \
                                      context): any agent can allow itself by sending those fields; also require \
                                      something the agent does not control, such as `agent.name`"
                                .to_string(),
                        });
                    }
                    if t.verdict == Verdict::Allow && program.reads_field(cel::Root::Signals, "mcp_hints") {
                        warnings.push(PolicyError {
                            line: t.pos.line,
                            col: t.pos.col,
                            field: format!("triggers.{}.when", t.name),
                            message: "this `allow` trigger reads `signals.mcp_hints`: MCP tool annotations are the \
                                      tool server's description of itself, which clients must not trust; use hints \
                                      to escalate or deny, and allow by tool name and `agent.name` (docs/mcp.md)"
                                .to_string(),
                        });
                    }
                    let actions = t.actions.clone().or_else(|| program.implied_actions.clone());
                    triggers.push(Trigger {
                        name: t.name.clone(),
                        reason: t.description.clone().unwrap_or_else(|| format!("condition `{}` held", t.when.trim())),
                        verdict: t.verdict,
                        actions,
                        program,
                    });
                }
                Err(e) => errors.push(PolicyError {
                    line: t.pos.line,
                    col: t.pos.col,
                    field: format!("triggers.{}.when", t.name),
                    message: e.message,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(PolicyErrors(errors));
        }
        let mut configs: HashMap<String, ClassConfig> =
            spec.actions.iter().map(|(name, c)| (name.clone(), resolve(c, &defaults))).collect();
        // Classes that only triggers mention still get an index entry.
        for t in &triggers {
            for a in t.actions.iter().flatten() {
                configs.entry(a.clone()).or_insert_with(|| defaults.clone());
            }
        }
        let index_for = |class: Option<&str>, config: ClassConfig| -> ClassIndex {
            let list = triggers
                .iter()
                .zip(&spec.triggers)
                .enumerate()
                .filter(|(_, (t, _))| match (&t.actions, class) {
                    (None, _) => true,
                    (Some(list), Some(c)) => list.iter().any(|a| a == c),
                    (Some(_), None) => false,
                })
                .map(|(i, (_, s))| (i, s.escalation.over(&config.escalation)))
                .collect();
            ClassIndex { config, triggers: list }
        };
        let classes = configs.into_iter().map(|(name, cfg)| {
            let idx = index_for(Some(&name), cfg);
            (name, idx)
        });
        let classes = classes.collect();
        let unlisted = index_for(None, defaults);
        Ok(Policy {
            name: spec.name,
            hash: content_hash(source),
            source: source.to_string(),
            triggers,
            classes,
            unlisted,
            warnings,
        })
    }

    /// Things that compile but are probably mistakes (e.g. an agent-controlled
    /// relaxation), in file order; `policy check` prints them.
    pub fn warnings(&self) -> &[PolicyError] {
        &self.warnings
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Content hash of the source this policy was compiled from.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The YAML source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Number of triggers.
    pub fn trigger_count(&self) -> usize {
        self.triggers.len()
    }

    /// What the action acts on (`host:srv-db-01`): the first of its class's
    /// `subject` paths that is set, else the default argument names.
    pub fn subject(&self, env: &Env<'_>) -> Option<String> {
        subject_of(self.class_config(env.name), env)
    }

    /// Every reviewer role an escalation can route to (a reviewer key needs one
    /// of these tags to see any case).
    pub fn reviewer_roles(&self) -> std::collections::BTreeSet<String> {
        let escalations = self
            .classes
            .values()
            .chain(std::iter::once(&self.unlisted))
            .flat_map(|c| std::iter::once(&c.config.escalation).chain(c.triggers.iter().map(|(_, e)| e)));
        escalations
            .flat_map(|e| e.reviewers.iter().chain(e.tiers.iter().flat_map(|t| t.reviewers.iter())))
            .cloned()
            .collect()
    }

    /// What `next` loosens for action class `class` compared with this
    /// version (the standard, e.g. the version a lesson's policy change
    /// made): each trigger that can fire for the class here and is gone in
    /// `next` (by name) or gives a less strict verdict there, a threshold
    /// that allows more (lower `auto_allow_at`, or one where there was none),
    /// and a less strict `below_threshold`. A trigger whose condition changed
    /// is not judged (a condition's strength is not decidable in general).
    pub fn loosened_in(&self, next: &Policy, class: &str) -> Vec<String> {
        let here = self.classes.get(class).unwrap_or(&self.unlisted);
        let there = next.classes.get(class).unwrap_or(&next.unlisted);
        let mut out = Vec::new();
        for (ti, _) in &here.triggers {
            let t = &self.triggers[*ti];
            let kept = there.triggers.iter().map(|(i, _)| &next.triggers[*i]).find(|n| n.name == t.name);
            match kept {
                None => out.push(format!("removes trigger `{}` ({} for `{class}`)", t.name, t.verdict)),
                Some(n) if n.verdict < t.verdict => {
                    out.push(format!("weakens trigger `{}` for `{class}` from {} to {}", t.name, t.verdict, n.verdict))
                }
                Some(_) => {}
            }
        }
        let (was, now) = (here.config.auto_allow_at, there.config.auto_allow_at);
        match (was, now) {
            (None, Some(b)) => out.push(format!("adds `auto_allow_at: {b}` to `{class}` (none before)")),
            (Some(a), Some(b)) if b < a => out.push(format!("lowers `{class}`'s `auto_allow_at` from {a} to {b}")),
            _ => {}
        }
        if there.config.below_threshold < here.config.below_threshold {
            out.push(format!(
                "relaxes `{class}`'s `below_threshold` from {} to {}",
                here.config.below_threshold, there.config.below_threshold
            ));
        }
        out
    }

    /// Names in this policy that can match nothing, as warnings: an action
    /// class or reviewer role one or two letters from another the policy
    /// names (`isolate_hots` beside `isolate_host`); and, given what a store
    /// knows, a class no decision ever had and a role no active key holds
    /// (`reviewers: [soc_analsyt]` reaches nobody).
    pub fn name_warnings(
        &self,
        classes_seen: Option<&std::collections::BTreeSet<String>>,
        roles_held: Option<&std::collections::BTreeSet<String>>,
    ) -> Vec<String> {
        let classes: std::collections::BTreeSet<&str> = self.classes.keys().map(String::as_str).collect();
        let roles = self.reviewer_roles();
        let roles: std::collections::BTreeSet<&str> = roles.iter().map(String::as_str).collect();
        let mut out = Vec::new();
        for (kind, names) in [("action class", &classes), ("reviewer role", &roles)] {
            let list: Vec<&str> = names.iter().copied().collect();
            for (i, a) in list.iter().enumerate() {
                for b in &list[i + 1..] {
                    if a.len().min(b.len()) >= 5 && edit_distance(a, b) <= 2 {
                        out.push(format!(
                            "{kind}s `{a}` and `{b}` differ by one or two letters: is one a typo of the other?"
                        ));
                    }
                }
            }
        }
        if let Some(seen) = classes_seen.filter(|s| !s.is_empty()) {
            for c in classes.iter().filter(|c| !seen.contains(**c)) {
                let near = seen.iter().find(|s| edit_distance(c, s) <= 2);
                out.push(match near {
                    Some(n) => format!("action class `{c}` was never proposed; did you mean `{n}`?"),
                    None => format!("action class `{c}` was never proposed (no decision in the store has it)"),
                });
            }
        }
        if let Some(held) = roles_held {
            for r in roles.iter().filter(|r| !held.contains(**r)) {
                let near = held.iter().find(|h| edit_distance(r, h) <= 2);
                out.push(match near {
                    Some(n) => format!("reviewer role `{r}` is held by no active key; did you mean `{n}`?"),
                    None => format!(
                        "reviewer role `{r}` is held by no active key: its cases reach only admins until one does"
                    ),
                });
            }
        }
        out
    }

    /// The triggers' names, in policy order.
    pub fn trigger_names(&self) -> impl Iterator<Item = &str> {
        self.triggers.iter().map(|t| t.name.as_str())
    }

    /// Whether the policy names this action class (in `actions` or a trigger's scope).
    pub fn knows_class(&self, class: &str) -> bool {
        self.classes.contains_key(class)
    }

    /// The settings that apply to an action class (the defaults for unlisted ones).
    pub fn class_config(&self, class: &str) -> &ClassConfig {
        &self.classes.get(class).unwrap_or(&self.unlisted).config
    }

    /// Whether every call of this action class is denied, whatever its
    /// arguments, signals, context, confidence or agent: a `deny` trigger
    /// for the class whose condition reads at most the action's name and
    /// holds, or a class that denies below its threshold, has no threshold
    /// that allows, and has no `allow` or `escalate` trigger that could fire.
    /// Conservative: `false` whenever some call might not be denied. The MCP
    /// gateway hides such tools from its tool list.
    pub fn always_denies(&self, class: &str) -> bool {
        let idx = self.classes.get(class).unwrap_or(&self.unlisted);
        let null = serde_json::Value::Null;
        let env = Env {
            name: class,
            args: &null,
            confidence: None,
            signals: &null,
            context: &null,
            agent: &null,
            trace_id: None,
        };
        let unconditional_deny = idx.triggers.iter().any(|(ti, _)| {
            let t = &self.triggers[*ti];
            t.verdict == Verdict::Deny
                && t.program.roots().iter().all(|r| *r == cel::Root::Name)
                && t.program.eval_bool(&env) == Ok(true)
        });
        let threshold_allows = idx.config.auto_allow_at.is_some_and(f64::is_finite);
        let only_denies = idx.triggers.iter().all(|(ti, _)| self.triggers[*ti].verdict == Verdict::Deny);
        unconditional_deny || (idx.config.below_threshold == Verdict::Deny && !threshold_allows && only_denies)
    }

    /// Evaluate one action: only the triggers indexed for its class run.
    pub fn evaluate(&self, env: &Env<'_>) -> Evaluation {
        let (idx, listed) = match self.classes.get(env.name) {
            Some(i) => (i, true),
            None => (&self.unlisted, false),
        };
        let mut fired = Vec::new();
        let mut errors = Vec::new();
        for (ti, esc) in &idx.triggers {
            let t = &self.triggers[*ti];
            match t.program.eval_bool(env) {
                Ok(true) => fired.push((t, esc)),
                Ok(false) => {}
                Err(e) => errors.push(ConditionError { trigger: t.name.clone(), message: e.0.into_owned() }),
            }
        }
        combine(env, &idx.config, listed, &fired, errors)
    }

    /// The naive baseline used by benchmarks: every trigger's condition is
    /// evaluated in policy order, with no index by action class; a trigger
    /// counts only if it applies to the action's class.
    #[doc(hidden)]
    pub fn evaluate_naive(&self, env: &Env<'_>) -> Evaluation {
        let listed = self.classes.contains_key(env.name);
        let idx = self.classes.get(env.name).unwrap_or(&self.unlisted);
        let config = &idx.config;
        let mut fired = Vec::new();
        let mut errors = Vec::new();
        for t in &self.triggers {
            let applies = t.actions.as_ref().is_none_or(|a| a.iter().any(|c| c == env.name));
            match t.program.eval_bool(env) {
                Ok(true) if applies => {
                    let esc = idx.triggers.iter().find(|(x, _)| std::ptr::eq(&self.triggers[*x], t));
                    let esc = esc.map(|(_, e)| e).unwrap_or(&config.escalation);
                    fired.push((t, esc));
                }
                Err(e) if applies => errors.push(ConditionError { trigger: t.name.clone(), message: e.0.into_owned() }),
                _ => {}
            }
        }
        combine(env, config, listed, &fired, errors)
    }
}

/// The documented combination rule (see `docs/policy.md`):
/// 1. any fired `deny` trigger: deny;
/// 2. else any fired `escalate` trigger: escalate, merging every fired
///    trigger's settings (and the class's, if the confidence is also below
///    the threshold) with [`Escalation::merge`];
/// 3. else any fired `allow` trigger: allow;
/// 4. else the confidence threshold: allow at or above `auto_allow_at`,
///    otherwise the class's `below_threshold` verdict.
fn combine(
    env: &Env<'_>,
    config: &ClassConfig,
    listed: bool,
    fired: &[(&Trigger, &Escalation)],
    condition_errors: Vec<ConditionError>,
) -> Evaluation {
    let strongest = fired.iter().map(|(t, _)| t.verdict).max();
    let threshold_met = match (config.auto_allow_at, env.confidence) {
        (Some(t), Some(c)) => c >= t,
        _ => false,
    };
    let mut explanation = String::new();
    let names = |v: Verdict| -> String {
        fired
            .iter()
            .filter(|(t, _)| t.verdict == v)
            .map(|(t, _)| format!("`{}`", t.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let threshold_text = || -> String {
        match (config.auto_allow_at, env.confidence) {
            (Some(t), _) if t.is_infinite() => {
                format!("`{}` never auto-allows (auto_allow_at: never)", env.name)
            }
            (Some(t), Some(c)) if c >= t => {
                format!("confidence {c} is at or above auto_allow_at {t}")
            }
            (Some(t), Some(c)) => format!("confidence {c} is below auto_allow_at {t}"),
            (Some(t), None) => format!("no confidence given (auto_allow_at is {t})"),
            (None, _) if listed => format!("`{}` has no auto_allow_at", env.name),
            (None, _) => format!("`{}` is not listed in the policy; the defaults apply", env.name),
        }
    };
    let (verdict, escalation) = match strongest {
        Some(Verdict::Deny) => {
            let _ = write!(explanation, "denied by {}", names(Verdict::Deny));
            (Verdict::Deny, None)
        }
        Some(Verdict::Escalate) => {
            let mut esc: Option<Escalation> = None;
            for (t, e) in fired.iter().filter(|(t, _)| t.verdict == Verdict::Escalate) {
                let _ = t;
                match &mut esc {
                    Some(acc) => acc.merge(e),
                    None => esc = Some((*e).clone()),
                }
            }
            let _ = write!(explanation, "escalated by {}", names(Verdict::Escalate));
            if !threshold_met && config.below_threshold == Verdict::Escalate {
                if let Some(acc) = &mut esc {
                    acc.merge(&config.escalation);
                }
                let _ = write!(explanation, "; also {}", threshold_text());
            }
            (Verdict::Escalate, esc)
        }
        Some(Verdict::Allow) => {
            let _ = write!(explanation, "allowed by {}", names(Verdict::Allow));
            (Verdict::Allow, None)
        }
        None if threshold_met => {
            let _ = write!(explanation, "allowed: {} and no trigger objected", threshold_text());
            (Verdict::Allow, None)
        }
        None => {
            let v = config.below_threshold;
            let _ = write!(
                explanation,
                "{}: {}",
                if v == Verdict::Deny { "denied" } else { "escalated" },
                threshold_text()
            );
            (v, (v == Verdict::Escalate).then(|| config.escalation.clone()))
        }
    };
    let triggers = fired
        .iter()
        .map(|(t, _)| FiredTrigger { name: t.name.clone(), verdict: t.verdict, reason: t.reason.clone() })
        .collect();
    let threshold = config.auto_allow_at.filter(|t| t.is_finite());
    let audit = config.audit_plan().filter(|_| verdict == Verdict::Allow);
    Evaluation { verdict, triggers, escalation, explanation, condition_errors, threshold, audit }
}

/// Levenshtein distance between two names (short: a row of their length).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
