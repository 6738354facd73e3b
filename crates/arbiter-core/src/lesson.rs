//! Lessons: what a closed review taught, in a form that can be found again
//! and fed back. Closing a review case creates its lesson from the review's
//! four stages, the decisions it is about and how reviewers answered them;
//! people edit it afterwards (every change is an audit event). Published
//! lessons become per-action guidance for the agent's prompt
//! ([`guidance`]).

use crate::case::Case;
use crate::decision::{Decision, FinalSource};
use crate::review::{Intervention, InterventionKind, InterventionStatus, StageRecord};
use crate::time::Timestamp;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How a person answered one decision: what lessons, guidance and datasets learn from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HumanAnswer {
    /// The decision.
    pub decision_id: String,
    /// Its action class.
    pub action: String,
    /// What the reviewers let happen: `allow` (approved, maybe modified) or `deny` (rejected).
    pub verdict: Verdict,
    /// The argument changes of a modification (`args.mode: "full" → "network_only"`), empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// The reviewers' rationale.
    pub rationale: String,
    /// Who answered.
    pub decided_by: Vec<String>,
    /// Failure-mode tags the reviewers gave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failure_modes: Vec<String>,
}

impl HumanAnswer {
    /// The answer people gave `decision` (its approval case carries the
    /// failure-mode tags), or `None` when no person decided it.
    pub fn of(decision: &Decision, case: Option<&Case>) -> Option<HumanAnswer> {
        let fin = decision.final_verdict.as_ref().filter(|f| f.source == FinalSource::Review)?;
        let changes = fin
            .action
            .as_ref()
            .map(|a| crate::diff::args_diff(&decision.action.args, &a.args).iter().map(|c| c.to_string()).collect())
            .unwrap_or_default();
        let mut failure_modes: Vec<String> =
            case.map(|c| c.answers.iter().flat_map(|a| a.failure_modes.iter().cloned()).collect()).unwrap_or_default();
        failure_modes.sort();
        failure_modes.dedup();
        Some(HumanAnswer {
            decision_id: decision.id.clone(),
            action: decision.action.name.clone(),
            verdict: fin.verdict,
            changes,
            rationale: fin.rationale.clone(),
            decided_by: fin.decided_by.clone(),
            failure_modes,
        })
    }

    /// Whether the reviewers changed or refused what the agent proposed.
    pub fn overrode(&self) -> bool {
        self.verdict == Verdict::Deny || !self.changes.is_empty()
    }
}

/// What a closed review taught.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lesson {
    /// Time-ordered unique id.
    pub id: String,
    /// The review case it came from.
    pub review_id: String,
    /// One line: the failure and its fix.
    pub title: String,
    /// What happened and what was done (the closing remark and the impact, unless edited).
    pub summary: String,
    /// Why it happened (the trace inspection's findings, unless edited).
    pub root_cause: String,
    /// Failure modes: the trace inspection's finding kinds and the reviewers' tags.
    pub failure_modes: Vec<String>,
    /// Action classes of the decisions it is about.
    pub action_classes: Vec<String>,
    /// Agents that proposed them.
    pub agents: Vec<String>,
    /// Policy triggers that fired on them.
    pub triggers: Vec<String>,
    /// Policy versions that decided them, and versions the interventions link.
    pub policy_versions: Vec<String>,
    /// The interventions, with their status and backtest.
    pub interventions: Vec<Intervention>,
    /// The decisions it is about.
    pub decision_ids: Vec<String>,
    /// How people answered those decisions.
    #[serde(default)]
    pub answers: Vec<HumanAnswer>,
    /// Lines for the agent's prompt, written by the team (see [`guidance`]).
    #[serde(default)]
    pub guidance: Vec<String>,
    /// Whether it feeds the prompt guidance (`GET /v1/guidance`).
    pub publish: bool,
    /// When it was created (when the review closed).
    pub created_at: Timestamp,
    /// Who closed the review.
    pub created_by: String,
    /// Last change.
    pub updated_at: Timestamp,
    /// Who changed it last.
    pub updated_by: String,
    /// 1 when created, +1 per change.
    pub revision: u32,
}

/// An edit of a lesson's human-written fields; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LessonPatch {
    /// New title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// New root cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_cause: Option<String>,
    /// Replace the failure modes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_modes: Option<Vec<String>>,
    /// Replace the guidance lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance: Option<Vec<String>>,
    /// Publish (or withdraw) it as prompt guidance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<bool>,
}

impl LessonPatch {
    /// Check sizes and tags; returns the offending field and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let text = |field: &str, s: &Option<String>, max: usize, required: bool| -> Result<(), (String, String)> {
            match s {
                Some(t) if required && t.trim().is_empty() => Err((field.into(), "must not be empty".into())),
                Some(t) if t.len() > max => Err((field.into(), format!("must be at most {} KiB", max / 1024))),
                _ => Ok(()),
            }
        };
        text("title", &self.title, 1024, true)?;
        text("summary", &self.summary, 64 * 1024, false)?;
        text("root_cause", &self.root_cause, 64 * 1024, false)?;
        if let Some(modes) = &self.failure_modes {
            if modes.len() > 50 {
                return Err(("failure_modes".into(), "at most 50 tags".into()));
            }
            if let Some(bad) = modes.iter().find(|m| !tag_ok(m)) {
                return Err(("failure_modes".into(), format!("`{bad}` is not a tag (letters, digits, `_`, `-`)")));
            }
        }
        if let Some(lines) = &self.guidance
            && (lines.len() > 50 || lines.iter().any(|l| l.trim().is_empty() || l.len() > 2048))
        {
            return Err(("guidance".into(), "at most 50 non-empty lines of at most 2 KiB".into()));
        }
        Ok(())
    }
}

fn tag_ok(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn sorted(items: impl IntoIterator<Item = String>) -> Vec<String> {
    items.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
}

/// The facts a lesson takes from its review, refreshed when the review closes again.
struct Facts {
    failure_modes: Vec<String>,
    action_classes: Vec<String>,
    agents: Vec<String>,
    triggers: Vec<String>,
    policy_versions: Vec<String>,
    interventions: Vec<Intervention>,
    decision_ids: Vec<String>,
    answers: Vec<HumanAnswer>,
}

fn facts(review_case: &Case, decisions: &[Decision], answer_cases: &[Case]) -> Facts {
    let review = review_case.review.as_ref();
    let answers: Vec<HumanAnswer> = decisions
        .iter()
        .filter_map(|d| {
            let case = d.case_id.as_deref().and_then(|id| answer_cases.iter().find(|c| c.id == id));
            HumanAnswer::of(d, case)
        })
        .collect();
    let findings = review.into_iter().flat_map(|r| r.entries.iter()).filter_map(|e| match &e.record {
        StageRecord::TraceInspection(t) => Some(t.findings.iter()),
        _ => None,
    });
    let failure_modes = sorted(
        findings
            .flatten()
            .map(|f| f.kind.as_str().to_string())
            .chain(answers.iter().flat_map(|a| a.failure_modes.iter().cloned())),
    );
    let interventions = review.map(|r| r.interventions.clone()).unwrap_or_default();
    let mut action_classes: Vec<String> = decisions.iter().map(|d| d.action.name.clone()).collect();
    if action_classes.is_empty() && !review_case.action_name.is_empty() && review_case.action_name != "*" {
        action_classes.push(review_case.action_name.clone());
    }
    Facts {
        failure_modes,
        action_classes: sorted(action_classes),
        agents: sorted(decisions.iter().map(|d| d.agent.clone())),
        triggers: sorted(decisions.iter().flat_map(|d| d.triggers.iter().map(|t| t.name.clone()))),
        policy_versions: sorted(
            decisions
                .iter()
                .map(|d| d.policy_hash.clone())
                .chain(interventions.iter().filter_map(|x| x.spec.policy_version.clone())),
        ),
        interventions,
        decision_ids: decisions.iter().map(|d| d.id.clone()).collect(),
        answers,
    }
}

impl Lesson {
    /// The lesson of a review case that `by` closes at `at` with remark
    /// `closing`: `decisions` are the review's decisions ([`crate::review::Review::failing_decisions`])
    /// and `answer_cases` their approval cases.
    pub fn from_review(
        id: String,
        review_case: &Case,
        decisions: &[Decision],
        answer_cases: &[Case],
        closing: &str,
        by: &str,
        at: Timestamp,
    ) -> Lesson {
        let review = review_case.review.as_ref();
        let f = facts(review_case, decisions, answer_cases);
        let mut summary = closing.trim().to_string();
        let mut root_cause = Vec::new();
        let mut guidance = Vec::new();
        for e in review.into_iter().flat_map(|r| r.entries.iter()) {
            match &e.record {
                StageRecord::TraceInspection(t) => {
                    root_cause.extend(t.findings.iter().map(|x| x.note.trim().to_string()))
                }
                StageRecord::ImpactAssessment(a) => {
                    summary.push_str(&format!(
                        "\nImpact ({}, {} affected): {}",
                        a.severity.as_str(),
                        a.scope.count,
                        a.technical_correctness.trim()
                    ));
                }
                _ => {}
            }
        }
        for x in &f.interventions {
            if x.spec.kind == InterventionKind::PromptRefinement {
                guidance.push(x.spec.description.trim().to_string());
            }
        }
        root_cause.dedup();
        Lesson {
            id,
            review_id: review_case.id.clone(),
            title: review.map_or_else(|| review_case.action_name.clone(), |r| r.title.clone()),
            summary,
            root_cause: root_cause.join("\n"),
            failure_modes: f.failure_modes,
            action_classes: f.action_classes,
            agents: f.agents,
            triggers: f.triggers,
            policy_versions: f.policy_versions,
            interventions: f.interventions,
            decision_ids: f.decision_ids,
            answers: f.answers,
            guidance,
            publish: false,
            created_at: at,
            created_by: by.to_string(),
            updated_at: at,
            updated_by: by.to_string(),
            revision: 1,
        }
    }

    /// The review closed again (after a reopen): take its current facts
    /// (interventions, decisions, answers, classes...), keep what people wrote.
    pub fn refresh(
        &mut self,
        review_case: &Case,
        decisions: &[Decision],
        answer_cases: &[Case],
        by: &str,
        at: Timestamp,
    ) {
        let f = facts(review_case, decisions, answer_cases);
        self.failure_modes = sorted(self.failure_modes.drain(..).chain(f.failure_modes));
        self.action_classes = f.action_classes;
        self.agents = f.agents;
        self.triggers = f.triggers;
        self.policy_versions = f.policy_versions;
        self.interventions = f.interventions;
        self.decision_ids = f.decision_ids;
        self.answers = f.answers;
        self.touch(by, at);
    }

    fn touch(&mut self, by: &str, at: Timestamp) {
        self.updated_at = at;
        self.updated_by = by.to_string();
        self.revision += 1;
    }

    /// Apply an edit; returns the names of the fields that changed (none: nothing to record).
    pub fn apply(&mut self, patch: &LessonPatch, by: &str, at: Timestamp) -> Vec<&'static str> {
        let mut changed = Vec::new();
        fn set<T: PartialEq + Clone>(
            field: &mut T,
            new: &Option<T>,
            name: &'static str,
            changed: &mut Vec<&'static str>,
        ) {
            if let Some(v) = new
                && v != field
            {
                *field = v.clone();
                changed.push(name);
            }
        }
        set(&mut self.title, &patch.title.as_ref().map(|t| t.trim().to_string()), "title", &mut changed);
        set(&mut self.summary, &patch.summary, "summary", &mut changed);
        set(&mut self.root_cause, &patch.root_cause, "root_cause", &mut changed);
        set(&mut self.failure_modes, &patch.failure_modes.clone().map(sorted), "failure_modes", &mut changed);
        set(&mut self.guidance, &patch.guidance, "guidance", &mut changed);
        set(&mut self.publish, &patch.publish, "publish", &mut changed);
        if !changed.is_empty() {
            self.touch(by, at);
        }
        changed
    }

    /// The text a search indexes: everything people wrote and the interventions.
    pub fn search_text(&self) -> String {
        let mut t = vec![self.summary.clone(), self.root_cause.clone()];
        t.extend(self.guidance.iter().cloned());
        t.extend(self.interventions.iter().map(|x| format!("{}: {}", x.spec.kind.as_str(), x.spec.description)));
        t.extend(self.answers.iter().map(|a| a.rationale.clone()));
        t.join("\n")
    }
}

/// What a guidance line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuidanceKind {
    /// A step now required before the action (a tool or policy change that is done).
    RequiredStep,
    /// Reviewers refused the action in a situation like this.
    Rejected,
    /// Reviewers changed the arguments before approving.
    Modified,
    /// A line the team wrote for the prompt (prompt refinements and the lesson's guidance).
    Instruction,
}

/// One line of guidance for an agent, with the lessons it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuidanceItem {
    /// The action class it is about (`*` for every class).
    pub action: String,
    /// What kind of line it is.
    pub kind: GuidanceKind,
    /// The line itself.
    pub text: String,
    /// Ids of the lessons it comes from.
    pub lessons: Vec<String>,
}

/// Per action class guidance from the published lessons (`action`: only that
/// class and lessons about every class): steps now required, what reviewers
/// rejected and why, the modifications they made, and the team's own lines.
/// Identical lines from several lessons are merged and cite them all.
pub fn guidance(lessons: &[Lesson], action: Option<&str>) -> Vec<GuidanceItem> {
    let mut out: Vec<GuidanceItem> = Vec::new();
    let mut push = |action: &str, kind: GuidanceKind, text: String, lesson: &str| {
        if let Some(item) = out.iter_mut().find(|i| i.action == action && i.kind == kind && i.text == text) {
            if !item.lessons.iter().any(|l| l == lesson) {
                item.lessons.push(lesson.to_string());
            }
        } else {
            out.push(GuidanceItem { action: action.to_string(), kind, text, lessons: vec![lesson.to_string()] });
        }
    };
    for l in lessons.iter().filter(|l| l.publish) {
        let classes: Vec<&str> =
            if l.action_classes.is_empty() { vec!["*"] } else { l.action_classes.iter().map(String::as_str).collect() };
        for class in classes.iter().copied().filter(|c| action.is_none_or(|a| *c == a || *c == "*")) {
            for x in &l.interventions {
                let done = matches!(x.status, InterventionStatus::Done | InterventionStatus::Verified);
                match x.spec.kind {
                    InterventionKind::ToolChange | InterventionKind::PolicyChange if done => {
                        push(class, GuidanceKind::RequiredStep, x.spec.description.trim().to_string(), &l.id)
                    }
                    _ => {}
                }
            }
            for a in l.answers.iter().filter(|a| a.action == class || class == "*") {
                if a.verdict == Verdict::Deny {
                    push(
                        class,
                        GuidanceKind::Rejected,
                        format!("Reviewers refused `{}`: {}", a.action, a.rationale.trim()),
                        &l.id,
                    );
                } else if !a.changes.is_empty() {
                    push(
                        class,
                        GuidanceKind::Modified,
                        format!(
                            "Reviewers changed `{}` before approving ({}): {}",
                            a.action,
                            a.changes.join("; "),
                            a.rationale.trim()
                        ),
                        &l.id,
                    );
                }
            }
            for line in &l.guidance {
                push(class, GuidanceKind::Instruction, line.trim().to_string(), &l.id);
            }
        }
    }
    out.sort_by(|a, b| (a.action.as_str(), a.kind).cmp(&(b.action.as_str(), b.kind)));
    out
}

/// Guidance as text to place in a system prompt: one section per action
/// class, one bullet per line, each citing its lessons.
pub fn guidance_prompt(items: &[GuidanceItem]) -> String {
    let mut out = String::from("Lessons from human review of your earlier actions (cite them when they apply):\n");
    let mut current: Option<&str> = None;
    for i in items {
        if current != Some(i.action.as_str()) {
            out.push_str(&if i.action == "*" {
                "\nAll actions:\n".to_string()
            } else {
                format!("\nBefore `{}`:\n", i.action)
            });
            current = Some(&i.action);
        }
        let prefix = match i.kind {
            GuidanceKind::RequiredStep => "Required: ",
            _ => "",
        };
        out.push_str(&format!("- {prefix}{} [lesson {}]\n", i.text, i.lessons.join(", ")));
    }
    if items.is_empty() {
        out.push_str("\n(none yet)\n");
    }
    out
}
