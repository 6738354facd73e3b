//! What a reviewer sees beside a new approval case: the most similar past
//! cases and lessons, and the blast radius of the agent's recent actions.
//!
//! **Similarity** of two decisions is a weighted sum in `[0, 1]`:
//! 0.40 for the same action class, 0.25 × the Jaccard overlap of the
//! triggers that fired, 0.20 for the same subject (or 0.10 for a shared
//! subject group), 0.15 × the Jaccard overlap of the words in their context
//! and signals. A lesson is compared the same way, with its action classes,
//! its triggers and the words of its title and text (it has no subject).
//! Only candidates scoring at least [`MIN_SIMILARITY`] are shown, best first.

use crate::action::Action;
use crate::decision::{Decision, FinalSource};
use crate::lesson::Lesson;
use crate::time::Timestamp;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

/// Argument names that name what an action acts on, in order of preference.
pub const SUBJECT_KEYS: [&str; 10] =
    ["subject", "host", "user", "ip", "account", "account_id", "customer_id", "email", "device", "path"];
/// Argument names that name a group of subjects.
pub const GROUP_KEYS: [&str; 6] = ["host_tags", "user_groups", "business_unit", "segment", "groups", "team"];

/// Weight of the same action class.
pub const W_ACTION: f64 = 0.40;
/// Weight of the trigger overlap.
pub const W_TRIGGERS: f64 = 0.25;
/// Weight of the same subject (half of it for a shared group).
pub const W_SUBJECT: f64 = 0.20;
/// Weight of the text overlap.
pub const W_TEXT: f64 = 0.15;
/// Candidates below this are not shown.
pub const MIN_SIMILARITY: f64 = 0.45;
/// How many of each are shown.
pub const TOP: usize = 3;

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What `action` acts on, as `key:value` (`host:ws-0042`), from the first
/// of [`SUBJECT_KEYS`] its arguments carry as a string or number.
pub fn subject(action: &Action) -> Option<String> {
    subject_in(&action.args)
}

/// [`subject`] of an action's arguments.
pub fn subject_in(args: &Value) -> Option<String> {
    SUBJECT_KEYS.iter().find_map(|k| args.get(*k).and_then(scalar).map(|v| format!("{k}:{v}")))
}

/// The groups `action`'s subject belongs to (`host_tags:server`, `business_unit:finance`).
pub fn groups(action: &Action) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for k in GROUP_KEYS {
        match action.args.get(k) {
            Some(Value::Array(items)) => out.extend(items.iter().filter_map(scalar).map(|v| format!("{k}:{v}"))),
            Some(v) => out.extend(scalar(v).map(|v| format!("{k}:{v}"))),
            None => {}
        }
    }
    out
}

/// Lowercase words of at least 3 letters or digits in the strings of `v` (at most 200).
pub fn words(v: &Value, out: &mut BTreeSet<String>) {
    if out.len() >= 200 {
        return;
    }
    match v {
        Value::String(s) => text_words(s, out),
        Value::Array(items) => items.iter().for_each(|x| words(x, out)),
        Value::Object(m) => m.values().for_each(|x| words(x, out)),
        _ => {}
    }
}

/// Lowercase words of at least 3 letters or digits in `s`.
pub fn text_words(s: &str, out: &mut BTreeSet<String>) {
    for w in s.split(|c: char| !c.is_alphanumeric()) {
        if w.chars().count() >= 3 && out.len() < 200 {
            out.insert(w.to_lowercase());
        }
    }
}

fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 { 0.0 } else { a.intersection(b).count() as f64 / union as f64 }
}

/// What similarity compares.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Features {
    /// Action classes (one for a decision; several for a lesson).
    pub actions: BTreeSet<String>,
    /// Triggers that fired.
    pub triggers: BTreeSet<String>,
    /// Subjects acted on.
    pub subjects: BTreeSet<String>,
    /// Subject groups.
    pub groups: BTreeSet<String>,
    /// Words of the context, signals (or a lesson's text).
    pub words: BTreeSet<String>,
}

impl Features {
    /// The features of a decision.
    pub fn of_decision(d: &Decision) -> Features {
        let mut w = BTreeSet::new();
        words(&d.context, &mut w);
        words(&d.action.signals, &mut w);
        Features {
            actions: [d.action.name.clone()].into(),
            triggers: d.triggers.iter().map(|t| t.name.clone()).collect(),
            subjects: subject(&d.action).into_iter().collect(),
            groups: groups(&d.action),
            words: w,
        }
    }

    /// The features of a lesson.
    pub fn of_lesson(l: &Lesson) -> Features {
        let mut w = BTreeSet::new();
        text_words(&l.title, &mut w);
        text_words(&l.search_text(), &mut w);
        Features {
            actions: l.action_classes.iter().cloned().collect(),
            triggers: l.triggers.iter().cloned().collect(),
            subjects: BTreeSet::new(),
            groups: BTreeSet::new(),
            words: w,
        }
    }
}

/// The documented similarity of two feature sets, in `[0, 1]`.
pub fn similarity(a: &Features, b: &Features) -> f64 {
    let same_action = if a.actions.intersection(&b.actions).next().is_some() { W_ACTION } else { 0.0 };
    let subject = if a.subjects.intersection(&b.subjects).next().is_some() {
        W_SUBJECT
    } else if a.groups.intersection(&b.groups).next().is_some() {
        W_SUBJECT / 2.0
    } else {
        0.0
    };
    same_action + W_TRIGGERS * jaccard(&a.triggers, &b.triggers) + subject + W_TEXT * jaccard(&a.words, &b.words)
}

/// A past case like this one, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilarCase {
    /// The past decision.
    pub decision_id: String,
    /// Its approval case, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_id: Option<String>,
    /// How similar, `[0, 1]`.
    pub score: f64,
    /// Its action class.
    pub action: String,
    /// What it acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When the agent proposed it.
    pub at: Timestamp,
    /// How it ended (`allow` / `deny`), if it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Who settled it: `review`, `sla_expired`, `policy`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<FinalSource>,
    /// The reviewers' (or the policy's) reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    /// Whether the reviewers changed the arguments.
    pub modified: bool,
    /// Ground truth, once known: was the proposed action right?
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<bool>,
}

/// A lesson about cases like this one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilarLesson {
    /// The lesson.
    pub lesson_id: String,
    /// Its title.
    pub title: String,
    /// How similar, `[0, 1]`.
    pub score: f64,
    /// The start of its summary.
    pub summary: String,
    /// The review it came from.
    pub review_id: String,
}

fn rounded(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The [`TOP`] past decisions most similar to `target` (never itself), best first.
pub fn similar_cases(target: &Decision, candidates: &[Decision]) -> Vec<SimilarCase> {
    let f = Features::of_decision(target);
    let mut scored: Vec<(f64, &Decision)> = candidates
        .iter()
        .filter(|d| d.id != target.id)
        .map(|d| (similarity(&f, &Features::of_decision(d)), d))
        .filter(|(s, _)| *s >= MIN_SIMILARITY)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.event_time.cmp(&a.1.event_time)));
    scored
        .into_iter()
        .take(TOP)
        .map(|(score, d)| SimilarCase {
            decision_id: d.id.clone(),
            case_id: d.case_id.clone(),
            score: rounded(score),
            action: d.action.name.clone(),
            subject: subject(&d.action),
            at: d.event_time,
            verdict: d.final_verdict.as_ref().map(|f| f.verdict),
            source: d.final_verdict.as_ref().map(|f| f.source),
            rationale: d.final_verdict.as_ref().map(|f| f.rationale.clone()),
            modified: d.final_verdict.as_ref().is_some_and(|f| f.action.is_some()),
            correct: d.outcome.as_ref().map(|o| o.correct),
        })
        .collect()
}

/// The [`TOP`] lessons most similar to `target`, best first.
pub fn similar_lessons(target: &Decision, lessons: &[Lesson]) -> Vec<SimilarLesson> {
    let f = Features::of_decision(target);
    let mut scored: Vec<(f64, &Lesson)> = lessons
        .iter()
        .map(|l| (similarity(&f, &Features::of_lesson(l)), l))
        .filter(|(s, _)| *s >= MIN_SIMILARITY)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.updated_at.cmp(&a.1.updated_at)));
    scored
        .into_iter()
        .take(TOP)
        .map(|(score, l)| SimilarLesson {
            lesson_id: l.id.clone(),
            title: l.title.clone(),
            score: rounded(score),
            summary: l.summary.chars().take(300).collect(),
            review_id: l.review_id.clone(),
        })
        .collect()
}

/// One of an agent's recent decisions of one action class, as the blast radius counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// When the agent proposed it.
    pub at: Timestamp,
    /// What it acted on.
    pub subject: Option<String>,
}

/// An agent's decisions over a period, all action classes.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentTotals {
    /// Decisions proposed.
    pub decisions: u64,
    /// Of them, escalated to people.
    pub escalated: u64,
    /// Decided by people.
    pub reviewed: u64,
    /// Of those, refused or modified by people.
    pub overridden: u64,
}

/// How far an action reaches: this agent's recent activity in the class,
/// the subject's history, and the agent's escalation and override rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlastRadius {
    /// The agent.
    pub agent: String,
    /// The action class.
    pub action: String,
    /// What this action acts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The agent's proposals of this class in the hour before the case.
    pub last_hour: u64,
    /// … and in the day before.
    pub last_day: u64,
    /// Median per hour over the 7 days before the last hour.
    pub hourly_median_7d: f64,
    /// Median per day over the 7 days before the last day.
    pub daily_median_7d: f64,
    /// Distinct subjects in the last hour.
    pub distinct_subjects_hour: u64,
    /// Distinct subjects in the last day.
    pub distinct_subjects_day: u64,
    /// Earlier decisions on the same subject (any agent, any class), most recent first (at most 10).
    pub subject_history: Vec<SimilarCase>,
    /// How many earlier decisions acted on the subject in all.
    pub subject_total: u64,
    /// The agent over the last 7 days, all classes.
    pub agent_7d: AgentTotals,
    /// Share of the agent's decisions escalated in the last 7 days.
    pub escalation_rate_7d: f64,
    /// Share of the agent's human-decided decisions that people refused or modified (none reviewed: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_rate_7d: Option<f64>,
    /// One sentence for people.
    pub summary: String,
}

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    crate::stats::quantile_sorted(&xs, 0.5)
}

/// The blast radius at `now`: `activity` is the agent's decisions of the
/// class over the 8 days before `now`; `history` the subject's earlier
/// decisions (most recent first) and `subject_total` how many there are.
pub fn blast_radius(
    target: &Decision,
    now: Timestamp,
    activity: &[Activity],
    history: &[Decision],
    subject_total: u64,
    agent_7d: AgentTotals,
) -> BlastRadius {
    let in_range = |a: &Activity, from: i64, to: i64| a.at.0 >= from && a.at.0 < to;
    let (hour_from, day_from) = (now.0 - HOUR, now.0 - DAY);
    let last_hour = activity.iter().filter(|a| in_range(a, hour_from, now.0 + 1)).count() as u64;
    let last_day = activity.iter().filter(|a| in_range(a, day_from, now.0 + 1)).count() as u64;
    let distinct = |from: i64| {
        activity
            .iter()
            .filter(|a| in_range(a, from, now.0 + 1))
            .filter_map(|a| a.subject.as_ref())
            .collect::<BTreeSet<_>>()
            .len() as u64
    };
    let mut per_hour = vec![0f64; 7 * 24];
    let mut per_day = [0f64; 7];
    for a in activity {
        let h = (hour_from - a.at.0 - 1).div_euclid(HOUR);
        if (0..7 * 24).contains(&h) {
            per_hour[h as usize] += 1.0;
        }
        let d = (day_from - a.at.0 - 1).div_euclid(DAY);
        if (0..7).contains(&d) {
            per_day[d as usize] += 1.0;
        }
    }
    let (hourly_median_7d, daily_median_7d) = (median(per_hour), median(per_day.to_vec()));
    let subject = subject(&target.action);
    let subject_history: Vec<SimilarCase> = history
        .iter()
        .filter(|d| d.id != target.id)
        .take(10)
        .map(|d| SimilarCase {
            decision_id: d.id.clone(),
            case_id: d.case_id.clone(),
            score: 1.0,
            action: d.action.name.clone(),
            subject: subject.clone(),
            at: d.event_time,
            verdict: d.final_verdict.as_ref().map(|f| f.verdict),
            source: d.final_verdict.as_ref().map(|f| f.source),
            rationale: d.final_verdict.as_ref().map(|f| f.rationale.clone()),
            modified: d.final_verdict.as_ref().is_some_and(|f| f.action.is_some()),
            correct: d.outcome.as_ref().map(|o| o.correct),
        })
        .collect();
    let escalation_rate_7d = agent_7d.escalated as f64 / agent_7d.decisions.max(1) as f64;
    let override_rate_7d = (agent_7d.reviewed > 0).then(|| agent_7d.overridden as f64 / agent_7d.reviewed as f64);
    let mut summary = format!(
        "{} proposed `{}` {} time(s) in the last hour (7-day hourly median {}) and {} in the last day (daily median {}).",
        target.agent, target.action.name, last_hour, hourly_median_7d, last_day, daily_median_7d
    );
    if let Some(s) = &subject {
        summary.push_str(&format!(" {s} was acted on {subject_total} time(s) before."));
    }
    BlastRadius {
        agent: target.agent.clone(),
        action: target.action.name.clone(),
        subject,
        last_hour,
        last_day,
        hourly_median_7d,
        daily_median_7d,
        distinct_subjects_hour: distinct(hour_from),
        distinct_subjects_day: distinct(day_from),
        subject_history,
        subject_total,
        agent_7d,
        escalation_rate_7d,
        override_rate_7d,
        summary,
    }
}
