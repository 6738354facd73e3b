//! Review cases: the structured record of how a failure was understood and
//! resolved, in four stages (contextual analysis, trace inspection, impact
//! assessment, resolution design).

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The perspectives that work a review case unless it names others: the
/// multidisciplinary team of engineering, product, data science and UX.
pub const DEFAULT_REVIEWERS: [&str; 4] = ["engineering", "product", "data_science", "ux"];

wire_names!(ReviewSource {
    Manual => "manual", Case => "case", Decision => "decision", DriftAlarm => "drift_alarm", UserReport => "user_report"
});
wire_names!(Stage {
    ContextualAnalysis => "contextual_analysis", TraceInspection => "trace_inspection",
    ImpactAssessment => "impact_assessment", ResolutionDesign => "resolution_design"
});
wire_names!(Reproduced { Yes => "yes", Partly => "partly", No => "no" });
wire_names!(FindingKind {
    MisreadIntent => "misread_intent", WrongAction => "wrong_action", WrongArguments => "wrong_arguments",
    MissingContext => "missing_context", ToolFailure => "tool_failure", Other => "other"
});
wire_names!(ImpactSeverity { S1 => "S1", S2 => "S2", S3 => "S3", S4 => "S4" });
wire_names!(InterventionKind {
    PromptRefinement => "prompt_refinement", WorkflowRedesign => "workflow_redesign", NewSkill => "new_skill",
    ToolChange => "tool_change", PolicyChange => "policy_change", UxChange => "ux_change", Training => "training"
});
wire_names!(InterventionStatus { Proposed => "proposed", InProgress => "in_progress", Done => "done", Verified => "verified" });

impl Stage {
    /// The stage's name in prose ("impact assessment"), not the wire name.
    pub fn label(self) -> &'static str {
        match self {
            Stage::ContextualAnalysis => "contextual analysis",
            Stage::TraceInspection => "trace inspection",
            Stage::ImpactAssessment => "impact assessment",
            Stage::ResolutionDesign => "resolution design",
        }
    }
}

impl ReviewSource {
    /// A name for people (`Drift alarm`), not the wire name.
    pub fn label(self) -> &'static str {
        match self {
            ReviewSource::Manual => "Opened by hand",
            ReviewSource::Case => "From an approval case",
            ReviewSource::Decision => "From decisions",
            ReviewSource::DriftAlarm => "Drift alarm",
            ReviewSource::UserReport => "User report",
        }
    }
}

/// Where a review case came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewSource {
    /// Opened by a person.
    Manual,
    /// Promoted from an approval case.
    Case,
    /// Promoted from a decision found wrong later.
    Decision,
    /// Opened by a drift alarm.
    DriftAlarm,
    /// A report from a user of the agent.
    UserReport,
}

/// The four stages, in the order they are usually worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// How the failure was reproduced.
    ContextualAnalysis,
    /// Findings anchored to decisions in the chain.
    TraceInspection,
    /// Severity, scope, correctness and user-experience impact.
    ImpactAssessment,
    /// The interventions that resolve it.
    ResolutionDesign,
}

/// Whether a failure could be reproduced in a controlled environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reproduced {
    /// Reproduced fully: the same input gives the same wrong action.
    Yes,
    /// Some of it.
    Partly,
    /// Not at all.
    No,
}

/// A pointer to evidence: a decision, a trace (and span), or a URL.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// A decision id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
    /// A trace id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// A span within the trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// Anything else (a notebook, a ticket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Stage 1: how the failure was reproduced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextualAnalysis {
    /// Reproduced yes / partly / no.
    pub reproduced: Reproduced,
    /// The steps taken.
    pub steps: Vec<String>,
    /// Where (model and prompt versions, tool stubs, data snapshot...).
    pub environment: String,
    /// The decisions and traces involved.
    #[serde(default)]
    pub links: Vec<Link>,
    /// The SHA-256 of the replay bundle reproduced from (`arbiter replay run` prints it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_sha256: Option<String>,
    /// What differed from the recorded run, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differences: Option<String>,
}

/// What went wrong at one point of the decision chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The agent misread the user's or the alert's intent.
    MisreadIntent,
    /// The agent picked the wrong action (tool).
    WrongAction,
    /// The right action with wrong arguments.
    WrongArguments,
    /// The agent lacked or ignored context.
    MissingContext,
    /// A tool misbehaved.
    ToolFailure,
    /// Anything else.
    Other,
}

/// One finding anchored to a decision (and optionally a trace span).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// The decision it is about.
    pub decision_id: String,
    /// A span in the agent's trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// The kind of mistake.
    pub kind: FindingKind,
    /// What happened there.
    pub note: String,
}

/// Stage 2: findings in the decision chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceInspection {
    /// At least one finding.
    pub findings: Vec<Finding>,
}

/// How bad, from S1 (worst) to S4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ImpactSeverity {
    /// Critical: major damage or exposure.
    S1,
    /// Serious: real harm, limited in scope or quickly reversed.
    S2,
    /// Moderate: a wrong action with little harm done.
    S3,
    /// Minor: a near miss or a cosmetic problem.
    S4,
}

/// One affected entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    /// `host`, `user`, `ticket`, `customer`, ...
    pub kind: String,
    /// Its identifier.
    pub id: String,
}

/// How far the failure reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// How many entities were affected (may exceed the list when only a sample is listed).
    pub count: u64,
    /// The affected entities (or a sample).
    #[serde(default)]
    pub entities: Vec<Entity>,
}

/// Stage 3: impact, with technical correctness and user experience assessed separately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpactAssessment {
    /// S1 (worst) to S4.
    pub severity: ImpactSeverity,
    /// Number and list of affected entities.
    pub scope: Scope,
    /// Was the agent's action technically right or wrong, and how.
    pub technical_correctness: String,
    /// What the people affected experienced.
    pub user_experience: String,
}

/// The kind of change an intervention makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterventionKind {
    /// Change the agent's prompt.
    PromptRefinement,
    /// Change the workflow around the agent.
    WorkflowRedesign,
    /// Give the agent a new skill.
    NewSkill,
    /// Change a tool (e.g. add a confirmation step).
    ToolChange,
    /// Change the Arbiter policy.
    PolicyChange,
    /// Change what people see.
    UxChange,
    /// Train the people involved.
    Training,
}

/// Where an intervention is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterventionStatus {
    /// Agreed on, not started.
    Proposed,
    /// Being done.
    InProgress,
    /// Made; its effect is not verified yet.
    Done,
    /// Done, and its effect was checked.
    Verified,
}

/// An intervention as proposed in a resolution design.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterventionSpec {
    /// What kind of change.
    pub kind: InterventionKind,
    /// What exactly.
    pub description: String,
    /// Who owns it.
    pub owner: String,
    /// The effect it should have, to verify later.
    pub expected_effect: String,
    /// For a `policy_change` or `tool_change`: the stored policy version that
    /// carries it (a tool change such as a confirmation step is expressed as a
    /// trigger, e.g. escalate unless `signals.confirmed == true`). Can also be
    /// linked later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
}

impl InterventionKind {
    /// Whether this kind of change is carried by a policy version, and so
    /// must be backtested on the review's decisions before the review closes.
    pub fn needs_policy_check(self) -> bool {
        matches!(self, InterventionKind::PolicyChange | InterventionKind::ToolChange)
    }
}

/// The backtest of an intervention's policy version on the review's own
/// decisions: would they now be escalated or denied?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterventionCheck {
    /// The version that was replayed.
    pub policy_version: String,
    /// The decisions replayed (the review's failing decisions).
    pub decisions: Vec<String>,
    /// Of them, the ones the version would still allow.
    pub still_allowed: Vec<String>,
    /// When it ran.
    pub at: Timestamp,
    /// Who ran it.
    pub by: String,
}

impl InterventionCheck {
    /// True when there was something to check and every decision would now
    /// be escalated or denied.
    pub fn passed(&self) -> bool {
        !self.decisions.is_empty() && self.still_allowed.is_empty()
    }
}

/// Stage 4: the interventions, or the recorded decision that none is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolutionDesign {
    /// New interventions.
    #[serde(default)]
    pub interventions: Vec<InterventionSpec>,
    /// Why no intervention is needed (instead of interventions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_intervention_needed: Option<String>,
}

/// The structured content of one stage entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum StageRecord {
    /// Stage 1.
    ContextualAnalysis(ContextualAnalysis),
    /// Stage 2.
    TraceInspection(TraceInspection),
    /// Stage 3.
    ImpactAssessment(ImpactAssessment),
    /// Stage 4.
    ResolutionDesign(ResolutionDesign),
}

impl StageRecord {
    /// Which stage this is.
    pub fn stage(&self) -> Stage {
        match self {
            StageRecord::ContextualAnalysis(_) => Stage::ContextualAnalysis,
            StageRecord::TraceInspection(_) => Stage::TraceInspection,
            StageRecord::ImpactAssessment(_) => Stage::ImpactAssessment,
            StageRecord::ResolutionDesign(_) => Stage::ResolutionDesign,
        }
    }

    /// Decision ids this record points at (to check they exist).
    pub fn referenced_decisions(&self) -> Vec<&str> {
        match self {
            StageRecord::ContextualAnalysis(c) => c.links.iter().filter_map(|l| l.decision_id.as_deref()).collect(),
            StageRecord::TraceInspection(t) => t.findings.iter().map(|f| f.decision_id.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    /// Check the content: required text present, sizes bounded, counts consistent.
    /// Returns the offending field (relative to the record) and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        fn text(field: &str, s: &str) -> Result<(), (String, String)> {
            if s.trim().is_empty() {
                return Err((field.into(), "must not be empty".into()));
            }
            if s.len() > 16 * 1024 {
                return Err((field.into(), "must be at most 16 KiB".into()));
            }
            Ok(())
        }
        fn count(field: &str, n: usize, max: usize) -> Result<(), (String, String)> {
            if n > max {
                return Err((field.into(), format!("at most {max} items")));
            }
            Ok(())
        }
        match self {
            StageRecord::ContextualAnalysis(c) => {
                if c.steps.is_empty() {
                    return Err(("steps".into(), "list the steps taken to reproduce it".into()));
                }
                count("steps", c.steps.len(), 100)?;
                for (i, s) in c.steps.iter().enumerate() {
                    text(&format!("steps[{i}]"), s)?;
                }
                text("environment", &c.environment)?;
                count("links", c.links.len(), 200)?;
                for (i, l) in c.links.iter().enumerate() {
                    if l.decision_id.is_none() && l.trace_id.is_none() && l.url.is_none() {
                        return Err((format!("links[{i}]"), "a link needs a decision_id, trace_id or url".into()));
                    }
                }
            }
            StageRecord::TraceInspection(t) => {
                if t.findings.is_empty() {
                    return Err(("findings".into(), "record at least one finding".into()));
                }
                count("findings", t.findings.len(), 200)?;
                for (i, f) in t.findings.iter().enumerate() {
                    text(&format!("findings[{i}].decision_id"), &f.decision_id)?;
                    text(&format!("findings[{i}].note"), &f.note)?;
                }
            }
            StageRecord::ImpactAssessment(a) => {
                if (a.scope.entities.len() as u64) > a.scope.count {
                    return Err(("scope.count".into(), "is smaller than the number of entities listed".into()));
                }
                count("scope.entities", a.scope.entities.len(), 10_000)?;
                for (i, e) in a.scope.entities.iter().enumerate() {
                    text(&format!("scope.entities[{i}].kind"), &e.kind)?;
                    text(&format!("scope.entities[{i}].id"), &e.id)?;
                }
                text("technical_correctness", &a.technical_correctness)?;
                text("user_experience", &a.user_experience)?;
            }
            StageRecord::ResolutionDesign(r) => {
                match (&r.no_intervention_needed, r.interventions.is_empty()) {
                    (None, true) => {
                        return Err((
                            "interventions".into(),
                            "propose at least one intervention, or say why none is needed in `no_intervention_needed`"
                                .into(),
                        ));
                    }
                    (Some(_), false) => {
                        return Err((
                            "no_intervention_needed".into(),
                            "cannot be given together with interventions".into(),
                        ));
                    }
                    (Some(why), true) => text("no_intervention_needed", why)?,
                    (None, false) => {}
                }
                count("interventions", r.interventions.len(), 100)?;
                for (i, x) in r.interventions.iter().enumerate() {
                    text(&format!("interventions[{i}].description"), &x.description)?;
                    text(&format!("interventions[{i}].owner"), &x.owner)?;
                    text(&format!("interventions[{i}].expected_effect"), &x.expected_effect)?;
                }
            }
        }
        Ok(())
    }
}

/// One stage entry: who wrote it, from which perspective, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageEntry {
    /// Author key name.
    pub by: String,
    /// The author's role (perspective) for this entry.
    pub role: String,
    /// Why the author concludes what the record says.
    pub rationale: String,
    /// When it happened (the server's clock).
    pub at: Timestamp,
    /// The structured content.
    #[serde(flatten)]
    pub record: StageRecord,
}

/// An intervention being tracked to its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intervention {
    /// Position in the review's list, from 0.
    pub index: usize,
    /// What was proposed.
    #[serde(flatten)]
    pub spec: InterventionSpec,
    /// Where it is.
    pub status: InterventionStatus,
    /// Last status change.
    pub updated_at: Timestamp,
    /// Who changed it last.
    pub updated_by: String,
    /// Note on the last change (e.g. how the effect was verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The latest backtest of its policy version on the review's decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<InterventionCheck>,
}

/// The review record of a review case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// One line saying what went wrong.
    pub title: String,
    /// More detail.
    #[serde(default)]
    pub description: String,
    /// Where it came from.
    pub source: ReviewSource,
    /// Decisions it is about.
    #[serde(default)]
    pub decision_ids: Vec<String>,
    /// Traces it is about.
    #[serde(default)]
    pub trace_ids: Vec<String>,
    /// The case it was promoted from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_case: Option<String>,
    /// Evidence attached when it was opened (e.g. drift statistics).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub evidence: serde_json::Value,
    /// Stage entries in the order they were recorded.
    #[serde(default)]
    pub entries: Vec<StageEntry>,
    /// Interventions from the resolution design, with their status.
    #[serde(default)]
    pub interventions: Vec<Intervention>,
    /// Why no intervention is needed, when that was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_intervention_needed: Option<String>,
}

impl Review {
    /// A new, empty review record.
    pub fn new(title: String, source: ReviewSource) -> Review {
        Review {
            title,
            description: String::new(),
            source,
            decision_ids: Vec::new(),
            trace_ids: Vec::new(),
            from_case: None,
            evidence: serde_json::Value::Null,
            entries: Vec::new(),
            interventions: Vec::new(),
            no_intervention_needed: None,
        }
    }

    /// Whether `stage` has at least one entry.
    pub fn has(&self, stage: Stage) -> bool {
        self.entries.iter().any(|e| e.record.stage() == stage)
    }

    /// What is still missing before the review can close (empty when it can).
    pub fn missing(&self) -> Vec<String> {
        let mut out: Vec<String> =
            Stage::ALL.iter().filter(|s| !self.has(**s)).map(|s| format!("an entry for the {}", s.label())).collect();
        if self.has(Stage::ResolutionDesign) && self.interventions.is_empty() && self.no_intervention_needed.is_none() {
            out.push("an intervention, or a recorded decision that none is needed".into());
        }
        for x in self.interventions.iter().filter(|x| x.spec.kind.needs_policy_check()) {
            let (i, kind) = (x.index, x.spec.kind.as_str());
            match (&x.spec.policy_version, &x.check) {
                (None, _) => out.push(format!("intervention {i} ({kind}) linked to the policy version that carries it")),
                (Some(v), Some(c)) if c.policy_version == *v && c.passed() => {}
                (Some(_), Some(c)) if c.decisions.is_empty() => out.push(format!(
                    "intervention {i} ({kind}): decisions to check it against (cite the failing decisions in the trace inspection)"
                )),
                (Some(_), _) => out.push(format!(
                    "intervention {i} ({kind}): a backtest of its policy version showing the review's decisions would now be escalated or denied"
                )),
            }
        }
        out
    }

    /// The decisions the review is about, as the learning loop reads them:
    /// the ones its trace inspection found wrong, else the ones it was opened with.
    pub fn failing_decisions(&self) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for e in &self.entries {
            if let StageRecord::TraceInspection(t) = &e.record {
                for f in &t.findings {
                    if !found.contains(&f.decision_id) {
                        found.push(f.decision_id.clone());
                    }
                }
            }
        }
        if found.is_empty() { self.decision_ids.clone() } else { found }
    }

    /// Add a stage entry (the projection of a `review.stage_recorded` event).
    pub fn record(&mut self, entry: StageEntry) {
        if let StageRecord::ResolutionDesign(r) = &entry.record {
            for spec in &r.interventions {
                self.interventions.push(Intervention {
                    index: self.interventions.len(),
                    spec: spec.clone(),
                    status: InterventionStatus::Proposed,
                    updated_at: entry.at,
                    updated_by: entry.by.clone(),
                    note: None,
                    check: None,
                });
            }
            if let Some(why) = &r.no_intervention_needed {
                self.no_intervention_needed = Some(why.clone());
            }
        }
        self.entries.push(entry);
    }
}

#[cfg(test)]
mod wire_name_tests {
    use super::*;

    fn same<T: Serialize + Copy>(all: &[T], name: impl Fn(T) -> &'static str) {
        for v in all {
            assert_eq!(serde_json::to_value(v).unwrap(), serde_json::json!(name(*v)));
        }
    }

    #[test]
    fn wire_names_match_serde() {
        same(ReviewSource::ALL, ReviewSource::as_str);
        same(Reproduced::ALL, Reproduced::as_str);
        same(FindingKind::ALL, FindingKind::as_str);
        same(ImpactSeverity::ALL, ImpactSeverity::as_str);
        same(InterventionKind::ALL, InterventionKind::as_str);
        same(InterventionStatus::ALL, InterventionStatus::as_str);
        for k in InterventionKind::ALL {
            assert_eq!(InterventionKind::parse(k.as_str()), Some(*k));
        }
    }
}
