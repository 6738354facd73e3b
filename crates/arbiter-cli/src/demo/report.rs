//! What the demo prints: the introduction before the replay and the
//! walkthrough after it.

use super::day::Summary;
use super::reviewers::PoolTally;
use super::{DemoArgs, HOUR, hhmm};
use anyhow::Result;
use arbiter_core::Verdict;
use arbiter_store::Store;
use arbiter_tuning::soc::DriftMode;
use std::path::Path;
use std::time::Duration;

/// Before the replay.
pub struct Intro<'a> {
    pub args: &'a DemoArgs,
    pub url: &'a str,
    pub db: &'a Path,
    pub triggers: usize,
    pub start: arbiter_core::Timestamp,
    pub admin_key: &'a str,
    pub analyst_key: &'a str,
    pub lead_key: &'a str,
    pub alerts: usize,
    pub drift: DriftMode,
    pub drift_at: i64,
}

/// Print where everything is and what is about to happen.
pub fn intro(i: &Intro) {
    println!("Arbiter demo: a simulated security operations center, {} hours, seed {}", i.args.hours, i.args.seed);
    println!("  server:     {}   (store: {})", i.url, i.db.display());
    println!("  console:    {}/   (sign in with the analyst or lead key below)", i.url);
    println!("  policy:     soc-triage, {} triggers (examples/policies/soc.yaml)", i.triggers);
    println!("  admin key:   {}", i.admin_key);
    println!("  analyst key: {}   (reviewer ana: soc_analyst)", i.analyst_key);
    println!("  lead key:    {}   (reviewer lee: soc_lead, network_team)", i.lead_key);
    let day = i.start.to_string();
    println!(
        "  clock:      simulated, in UTC: day one is {}; [16:00] marks below are that clock",
        day.get(..10).unwrap_or(&day)
    );
    let drift = match i.drift {
        DriftMode::None => "no drift injected".to_string(),
        DriftMode::OverIsolation => format!("the agent starts over-isolating hosts at {}", hhmm(i.drift_at)),
        DriftMode::ConfidenceSlide => format!("the agent's confidence slides from {}", hhmm(i.drift_at)),
        DriftMode::IsolationRamp { .. } => format!("the agent drifts into over-isolating from {}", hhmm(i.drift_at)),
        DriftMode::ConfidenceSlideOn { class, .. } => {
            format!("the agent's confidence on `{class}` slides from {}", hhmm(i.drift_at))
        }
        DriftMode::ErrorsOn { class, .. } => {
            format!("the agent gets `{class}` wrong more often from {}", hhmm(i.drift_at))
        }
    };
    println!("  replaying {} alerts at ~{:.0}/hour; {drift}", i.alerts, i.args.rate);
    println!();
}

/// How many cases moved to a later tier and how many fell back after their SLA.
#[derive(Debug, Clone, Copy)]
pub struct SlaCounts {
    pub tier_escalations: u64,
    pub fallbacks: u64,
}

/// Count the SLA events in the audit log.
pub async fn sla_counts(store: &dyn Store) -> Result<SlaCounts> {
    let mut counts = SlaCounts { tier_escalations: 0, fallbacks: 0 };
    let mut after = 0;
    loop {
        let page = store.events(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        counts.tier_escalations += page.iter().filter(|e| e.kind == "case.tier_escalated").count() as u64;
        counts.fallbacks += page.iter().filter(|e| e.kind == "case.fallback_applied").count() as u64;
    }
    Ok(counts)
}

/// After the replay.
pub struct Walkthrough<'a> {
    pub args: &'a DemoArgs,
    pub elapsed: Duration,
    pub drift: DriftMode,
    pub drift_at: i64,
    pub summary: &'a Summary,
    pub pool: PoolTally,
    pub sla: SlaCounts,
}

/// Print what happened and where to look closer.
pub fn walkthrough(w: &Walkthrough) {
    let s = w.summary;
    let n: u64 = s.by_verdict.values().sum();
    let get = |v: Verdict| s.by_verdict.get(&v).copied().unwrap_or(0);
    let pct = |a: u64, b: u64| 100.0 * a as f64 / b.max(1) as f64;
    println!();
    println!("Replayed {} simulated hours in {:.1} s.", w.args.hours, w.elapsed.as_secs_f64());
    println!(
        "Decisions: {n}: allowed {} ({:.1}%), escalated {} ({:.1}%), denied {} ({:.1}%)",
        get(Verdict::Allow),
        pct(get(Verdict::Allow), n),
        get(Verdict::Escalate),
        pct(get(Verdict::Escalate), n),
        get(Verdict::Deny),
        pct(get(Verdict::Deny), n)
    );
    println!(
        "Escalation rate against a {:.0}% reviewer budget: {:.1}% before {}, {:.1}% after",
        100.0 * super::tuning::BUDGET,
        pct(s.escalated_before.0, s.escalated_before.1),
        hhmm(w.drift_at),
        pct(s.escalated_after.0, s.escalated_after.1)
    );
    println!(
        "Reviewers answered {} cases ({} modified, {} human mistakes); {} moved to a later tier, {} fell back after their SLA",
        w.pool.answered, w.pool.modified, w.pool.human_errors, w.sla.tier_escalations, w.sla.fallbacks
    );
    let first_after = s.alarms.iter().find(|a| a.at >= w.drift_at);
    match (w.drift, first_after) {
        (DriftMode::None, _) => println!("No drift injected; {} alarm(s) raised", s.alarms.len()),
        (_, Some(a)) => {
            println!("Drift caught {:.2} h after it started: {}", (a.at - w.drift_at) as f64 / HOUR as f64, a.summary)
        }
        (_, None) => println!("The drift was NOT caught within the replay."),
    }
}

/// After the review team closed the loop.
pub fn loop_closed(c: &super::team::Closed) {
    println!(
        "[review] closed; lesson {} published; policy version {} is live",
        c.lesson.id,
        &c.policy[..12.min(c.policy.len())]
    );
    println!("[review] what the agent now reads before isolating (GET /v1/guidance?action=isolate_host):");
    for line in c.guidance.lines().filter(|l| l.starts_with("- ")).take(4) {
        println!("           {line}");
    }
}

/// Day two against day one: did the failure stop? True when the wrong
/// isolations that ran unreviewed fell by at least half (per hour of drift).
pub fn day_two(args: &DemoArgs, day1: &Summary, day2: &Summary, view: &arbiter_api::learning::LessonView) -> bool {
    let drift_hours_1 = (args.hours - args.drift_at).max(1) as f64;
    let drift_hours_2 = args.hours.max(1) as f64;
    let (before, after) = (day1.harmful_isolations.1, day2.harmful_isolations.0 + day2.harmful_isolations.1);
    let (rate1, rate2) = (before as f64 / drift_hours_1, after as f64 / drift_hours_2);
    let n2: u64 = day2.by_verdict.values().sum();
    let esc2 = day2.by_verdict.get(&Verdict::Escalate).copied().unwrap_or(0);
    println!(
        "Wrong isolations that ran without a person: {before} in the {} drifted hours of day one ({rate1:.2}/h), {after} in the {} of day two ({rate2:.2}/h)",
        drift_hours_1, drift_hours_2
    );
    println!(
        "Day two escalated {:.1}% of {n2} decisions (the agent's drift still costs reviewer time until its prompt fix lands).",
        100.0 * esc2 as f64 / n2.max(1) as f64
    );
    for r in &view.recurrence {
        println!("Recurrence on the lesson: {}", r.summary);
    }
    let stopped = rate2 <= rate1 / 2.0;
    println!(
        "{}",
        if stopped {
            "The failure stopped recurring: the loop is closed."
        } else {
            "The failure did NOT stop recurring."
        }
    );
    stopped
}

/// What the end of the walkthrough points at.
pub struct LookCloser<'a> {
    pub url: &'a str,
    /// Whether the server keeps serving (no `--exit`).
    pub running: bool,
    pub db: &'a Path,
    /// (role, who and their reviewer roles, key).
    pub keys: &'a [(&'a str, &'a str, &'a str)],
    pub review: Option<&'a String>,
    pub lesson: Option<&'a str>,
    pub tuned: Option<&'a super::tuning::Tuned>,
}

/// Where to look closer, at the end: the keys, then commands that work as printed.
pub fn look_closer(l: &LookCloser) {
    let Some(first) = l.review else { return };
    let db = l.db.display();
    println!("\nKeys (stored in {db}):");
    for (role, who, key) in l.keys.iter().filter(|k| !k.2.is_empty()) {
        println!("  {:<9} {key}   ({who})", format!("{role}:"));
    }
    if let Some(t) = l.tuned {
        let until = super::tuning::rfc3339(t.until);
        println!("\nThe tuning and its backtest from a terminal (no server needed):");
        println!(
            "  arbiter tune --db {db} --until {until} --policy {} --max-escalation-rate {:.2} --max-auto-error {:.2}",
            t.live_file.display(),
            super::tuning::command_budget(t),
            super::tuning::MAX_AUTO_ERROR
        );
        println!(
            "  arbiter policy backtest {} --against {} --db {db} --until {until}",
            t.tuned_file.display(),
            t.live_file.display()
        );
    }
    println!("  arbiter audit verify --db {db}");
    if l.running {
        println!(
            "\nLook closer: open the reviewer console at {}/ and sign in with a key above, or from a terminal:",
            l.url
        );
    } else {
        println!(
            "\nThe demo's server has stopped. To look closer, serve its store again (with the real clock: cases still \
             open fall back once their SLA has passed) and use the keys above:"
        );
        println!("  arbiter serve --db {db} --listen {} &", l.url.trim_start_matches("http://"));
    }
    let lead = l.keys.iter().find(|k| k.0 == "lead").map_or("", |k| k.2);
    println!("  export ARBITER_URL={} ARBITER_KEY={lead}", l.url);
    println!("  arbiter reviews show {first}          # the drift review case and its evidence");
    if let Some(lesson) = l.lesson {
        println!("  arbiter lessons show {lesson}   # what it taught, and whether it stopped");
        println!("  arbiter lessons export --format prompt --action isolate_host");
    }
    println!("  arbiter cases list                        # the lead's queue");
    println!("  arbiter cases history --limit 20          # decided cases, newest first");
    println!("  curl -s $ARBITER_URL/v1/drift -H \"Authorization: Bearer $ARBITER_KEY\"");
}
