//! `arbiter lessons list|show|search|edit|create|export`: learning
//! from a terminal (over HTTP).

use crate::client::{Api, ApiArgs};
use crate::table::Table;
use anyhow::{Context, Result};
use arbiter_api::learning::{Guidance, LessonView, SearchResults};
use arbiter_core::lesson::{Lesson, LessonPatch};
use clap::{Subcommand, ValueEnum};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// What `export` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// Guidance text for an agent's system prompt (published lessons only).
    Prompt,
    /// JSON Lines of human-reviewed decisions: input and label fields (evaluation tools, DSPy-style optimizers).
    Dataset,
    /// JSON Lines of human-reviewed decisions in OpenAI chat fine-tuning format.
    Chat,
    /// Every lesson as JSON Lines.
    Lessons,
}

/// Lessons subcommands.
#[derive(Debug, Subcommand)]
pub enum LessonsCommand {
    /// Lessons, most recently changed first.
    List {
        /// Only lessons about this action class.
        #[arg(long)]
        action: Option<String>,
        /// Only published lessons.
        #[arg(long)]
        published: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A lesson with its history and whether the failure stopped recurring.
    Show {
        /// Lesson id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Full-text search over lessons, review cases and reviewed decisions.
    Search {
        /// The words to find.
        #[arg(required = true)]
        words: Vec<String>,
        /// lesson, review or decision.
        #[arg(long)]
        kind: Option<String>,
        /// Only about this action class.
        #[arg(long)]
        action: Option<String>,
        /// Only about this agent.
        #[arg(long)]
        agent: Option<String>,
        /// Only with this failure mode.
        #[arg(long)]
        failure_mode: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Edit a lesson (each change is an audit event).
    Edit {
        /// Lesson id.
        id: String,
        /// New title.
        #[arg(long)]
        title: Option<String>,
        /// New summary.
        #[arg(long)]
        summary: Option<String>,
        /// New root cause.
        #[arg(long)]
        root_cause: Option<String>,
        /// Publish it as prompt guidance.
        #[arg(long, conflicts_with = "unpublish")]
        publish: bool,
        /// Withdraw it from the guidance.
        #[arg(long)]
        unpublish: bool,
        /// A guidance line for the agent's prompt (repeatable; replaces the lines).
        #[arg(long = "guidance")]
        guidance: Vec<String>,
    },
    /// Create the lesson of a review that closed before lessons existed.
    Create {
        /// The closed review case.
        #[arg(long)]
        review: String,
    },
    /// Export guidance, datasets or lessons.
    Export {
        /// What to write.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Only this action class.
        #[arg(long)]
        action: Option<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn print_lessons(lessons: &[Lesson]) {
    let mut t = Table::new(&["ID", "UPDATED", "PUBLISHED", "ACTIONS", "TITLE"]);
    for l in lessons {
        t.row(vec![
            l.id.clone(),
            l.updated_at.to_string(),
            if l.publish { "yes".into() } else { "no".into() },
            l.action_classes.join(","),
            l.title.clone(),
        ]);
    }
    t.print();
}

/// Run a lessons subcommand.
pub fn run(cmd: LessonsCommand, api: &ApiArgs) -> Result<ExitCode> {
    let api = Api::new(api)?;
    match cmd {
        LessonsCommand::List { action, published, json } => {
            let mut path = format!("/v1/lessons?published={published}");
            if let Some(a) = action {
                path.push_str(&format!("&action={}", enc(&a)));
            }
            let lessons: Vec<Lesson> = api.get_as(&path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&lessons)?);
            } else if lessons.is_empty() {
                println!("no lessons yet (closing a review case creates one)");
            } else {
                print_lessons(&lessons);
            }
        }
        LessonsCommand::Show { id, json } => {
            let v: LessonView = api.get_as(&format!("/v1/lessons/{}", enc(&id)))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            let l = &v.lesson;
            println!(
                "{}  (revision {}, {})",
                l.title,
                l.revision,
                if l.publish { "published" } else { "not published" }
            );
            println!("review {}; actions {}; agents {}", l.review_id, l.action_classes.join(", "), l.agents.join(", "));
            println!("failure modes: {}", l.failure_modes.join(", "));
            println!("\nsummary:\n  {}", l.summary.replace('\n', "\n  "));
            println!("root cause:\n  {}", l.root_cause.replace('\n', "\n  "));
            for x in &l.interventions {
                println!("intervention [{}] {}: {}", x.status.as_str(), x.spec.kind.as_str(), x.spec.description);
            }
            for a in &l.answers {
                println!("reviewers: {} -> {}: {}", a.decision_id, a.verdict, a.rationale);
            }
            for g in &l.guidance {
                println!("guidance: {g}");
            }
            for r in &v.recurrence {
                println!(
                    "recurrence after {} went live: {}",
                    &r.policy_version[..12.min(r.policy_version.len())],
                    r.summary
                );
            }
            println!("history:");
            for e in &v.history {
                let changed = e.data["changed"]
                    .as_array()
                    .map(|c| c.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "));
                println!("  {}  {:<15} {}  {}", e.at, e.kind, e.actor, changed.unwrap_or_default());
            }
        }
        LessonsCommand::Search { words, kind, action, agent, failure_mode, json } => {
            let mut path = format!("/v1/search?q={}", enc(&words.join(" ")));
            for (k, v) in [("kind", kind), ("action", action), ("agent", agent), ("failure_mode", failure_mode)] {
                if let Some(v) = v {
                    path.push_str(&format!("&{k}={}", enc(&v)));
                }
            }
            let r: SearchResults = api.get_as(&path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(ExitCode::SUCCESS);
            }
            if r.hits.is_empty() {
                println!("nothing found");
            }
            for h in &r.hits {
                println!("{} {}  {}  [{}]", h.kind.as_str(), h.id, h.title, h.at);
                println!("    {}", h.snippet.replace('\n', " "));
            }
        }
        LessonsCommand::Edit { id, title, summary, root_cause, publish, unpublish, guidance } => {
            let patch = LessonPatch {
                title,
                summary,
                root_cause,
                failure_modes: None,
                guidance: (!guidance.is_empty()).then_some(guidance),
                publish: if publish {
                    Some(true)
                } else if unpublish {
                    Some(false)
                } else {
                    None
                },
            };
            let l: Lesson = api.patch_as(&format!("/v1/lessons/{}", enc(&id)), &patch)?;
            println!("lesson {} is at revision {}", l.id, l.revision);
        }
        LessonsCommand::Create { review } => {
            let l: Lesson = api.post_as("/v1/lessons", &json!({"review_id": review}))?;
            println!("created lesson {}", l.id);
        }
        LessonsCommand::Export { format, action, out } => {
            let text = match format {
                ExportFormat::Prompt => {
                    let path = match &action {
                        Some(a) => format!("/v1/guidance?action={}", enc(a)),
                        None => "/v1/guidance".to_string(),
                    };
                    api.get_as::<Guidance>(&path)?.prompt
                }
                ExportFormat::Dataset | ExportFormat::Chat => {
                    let f = if matches!(format, ExportFormat::Chat) { "chat" } else { "examples" };
                    let mut path = format!("/v1/datasets/reviewed?format={f}&limit=100000");
                    if let Some(a) = &action {
                        path.push_str(&format!("&action={}", enc(a)));
                    }
                    api.get_text(&path)?
                }
                ExportFormat::Lessons => {
                    let mut path = "/v1/lessons?limit=1000".to_string();
                    if let Some(a) = &action {
                        path.push_str(&format!("&action={}", enc(a)));
                    }
                    let lessons: Vec<Lesson> = api.get_as(&path)?;
                    let mut s = String::new();
                    for l in lessons {
                        s.push_str(&serde_json::to_string(&l)?);
                        s.push('\n');
                    }
                    s
                }
            };
            match out {
                Some(p) => {
                    std::fs::write(&p, &text).with_context(|| format!("cannot write {}", p.display()))?;
                    eprintln!("wrote {} line(s) to {}", text.lines().count(), p.display());
                }
                None => std::io::stdout().write_all(text.as_bytes())?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encode a query value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
