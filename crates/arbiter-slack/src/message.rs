//! Block Kit for approval cases, within Slack's documented limits (header
//! 150 characters, section text 3,000, field 2,000, button value 2,000,
//! modal title 24, at most 50 blocks). Dates use Slack's date formatting
//! (`<!date^...>`), so each reader sees their own time zone.

use serde_json::{Value, json};

/// Where a case's buttons point: the action ids Slack sends back.
pub const CLAIM: &str = "arbiter:claim";
/// Approve (opens the rationale modal).
pub const APPROVE: &str = "arbiter:approve";
/// Reject (opens the rationale modal).
pub const REJECT: &str = "arbiter:reject";
/// Modify (opens the arguments modal).
pub const MODIFY: &str = "arbiter:modify";
/// The link to the case in the console (Slack still sends a click).
pub const OPEN: &str = "arbiter:open";
/// The answer modal's callback id.
pub const ANSWER_MODAL: &str = "arbiter:answer";

/// What a case's message shows.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseCard {
    /// The case's project.
    pub project: String,
    /// The case.
    pub case_id: String,
    /// The proposed action's name.
    pub action: String,
    /// What it acts on, when the agent said.
    pub subject: Option<String>,
    /// The agent that proposed it.
    pub agent: String,
    /// The proposed arguments (as they stand: a modification replaces them).
    pub args: Value,
    /// Why it escalated, in plain words (one line per trigger).
    pub reasons: Vec<String>,
    /// The agent's confidence.
    pub confidence: Option<f64>,
    /// The action class's threshold.
    pub threshold: Option<f64>,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// The reviewer roles that may answer (this tier).
    pub reviewers: Vec<String>,
    /// Approvals needed, and those given so far (by whom).
    pub approvals_needed: u32,
    /// Who approved so far.
    pub approved_by: Vec<String>,
    /// When the current tier's SLA ends (Unix seconds), and as UTC text.
    pub deadline: (i64, String),
    /// Who holds the case, if someone does.
    pub claimed_by: Option<String>,
    /// The case in the console, when the server knows its public URL.
    pub console_url: Option<String>,
    /// How it ended, once it did.
    pub outcome: Option<Outcome>,
}

/// How a case ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Plain words: "Approved", "Rejected", "Approved with changes", "Fallback applied: deny", "Withdrawn".
    pub headline: String,
    /// Who decided (people, or `sla` / the agent).
    pub by: Vec<String>,
    /// Their rationale, when there was one.
    pub rationale: Option<String>,
    /// When (Unix seconds, and as UTC text).
    pub at: (i64, String),
}

/// Cut `s` to at most `max` characters, marking the cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Escape text for mrkdwn (`&`, `<`, `>`), as Slack documents.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn date(unix: i64, fallback: &str) -> String {
    format!("<!date^{unix}^{{date_short_pretty}} at {{time}}|{}>", escape(fallback))
}

fn plain(text: &str, max: usize) -> Value {
    json!({"type": "plain_text", "text": clip(text, max), "emoji": true})
}

fn mrkdwn(text: &str) -> Value {
    json!({"type": "mrkdwn", "text": clip(text, 3000)})
}

impl CaseCard {
    /// The value every button carries: `{project}/{case id}`.
    pub fn button_value(&self) -> String {
        format!("{}/{}", self.project, self.case_id)
    }

    fn title(&self) -> String {
        match &self.subject {
            Some(s) => format!("{} on {s}", self.action),
            None => self.action.clone(),
        }
    }

    /// The notification text (also what screen readers and old clients show).
    pub fn text(&self) -> String {
        match &self.outcome {
            Some(o) => clip(&format!("{}: {} ({})", o.headline, self.title(), self.case_id), 3000),
            None => clip(
                &format!(
                    "Approval needed ({}): {} proposed by {}, due {}",
                    self.severity,
                    self.title(),
                    self.agent,
                    self.deadline.1
                ),
                3000,
            ),
        }
    }

    /// The message's blocks.
    pub fn blocks(&self) -> Vec<Value> {
        let head = match &self.outcome {
            Some(o) => format!("{}: {}", o.headline, self.title()),
            None => format!("Approval needed: {}", self.title()),
        };
        let confidence = match (self.confidence, self.threshold) {
            (Some(c), Some(t)) => format!("{c:.2} (threshold {t:.2})"),
            (Some(c), None) => format!("{c:.2}"),
            _ => "not given".to_string(),
        };
        let mut fields = vec![
            mrkdwn(&format!("*Agent*\n{}", escape(&self.agent))),
            mrkdwn(&format!("*Severity*\n{}", escape(&self.severity))),
            mrkdwn(&format!("*Confidence*\n{confidence}")),
            mrkdwn(&format!("*Reviewers*\n{}", escape(&self.reviewers.join(", ")))),
        ];
        if self.outcome.is_none() {
            fields.push(mrkdwn(&format!("*Due*\n{}", date(self.deadline.0, &self.deadline.1))));
            fields.push(mrkdwn(&format!(
                "*Approvals*\n{} of {}{}",
                self.approved_by.len(),
                self.approvals_needed,
                if self.approved_by.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", escape(&self.approved_by.join(", ")))
                }
            )));
        }
        let reasons = if self.reasons.is_empty() {
            "the policy asks a person for this action".to_string()
        } else {
            self.reasons.iter().map(|r| format!("• {}", escape(r))).collect::<Vec<_>>().join("\n")
        };
        let args = serde_json::to_string_pretty(&self.args).unwrap_or_default();
        let mut blocks = vec![
            json!({"type": "header", "text": plain(&head, 150)}),
            json!({"type": "section", "fields": fields}),
            json!({"type": "section", "text": mrkdwn(&format!("*Why it escalated*\n{}", clip(&reasons, 2900)))}),
            json!({"type": "section", "text": mrkdwn(&format!("*Arguments*\n```{}```", clip(&escape(&args), 2900)))}),
        ];
        match &self.outcome {
            None => {
                let value = self.button_value();
                let mut buttons = vec![
                    json!({"type": "button", "action_id": CLAIM, "text": plain("Claim", 75), "value": value}),
                    json!({"type": "button", "action_id": APPROVE, "text": plain("Approve", 75), "style": "primary", "value": value}),
                    json!({"type": "button", "action_id": REJECT, "text": plain("Reject", 75), "style": "danger", "value": value}),
                    json!({"type": "button", "action_id": MODIFY, "text": plain("Modify", 75), "value": value}),
                ];
                if let Some(url) = &self.console_url {
                    buttons.push(
                        json!({"type": "button", "action_id": OPEN, "text": plain("Open in Arbiter", 75), "url": url}),
                    );
                }
                blocks.push(json!({"type": "actions", "block_id": "arbiter:case", "elements": buttons}));
                let holder = match &self.claimed_by {
                    Some(by) => format!("Claimed by *{}*", escape(by)),
                    None => "Unclaimed".to_string(),
                };
                blocks.push(
                    json!({"type": "context", "elements": [mrkdwn(&format!("{holder} · case `{}`", self.case_id))]}),
                );
            }
            Some(o) => {
                let by = if o.by.is_empty() { String::new() } else { format!(" by *{}*", escape(&o.by.join(", "))) };
                let why = o.rationale.as_deref().map_or(String::new(), |r| format!("\n> {}", escape(&clip(r, 2500))));
                blocks.push(json!({"type": "section", "text": mrkdwn(&format!("*{}*{by}{why}", escape(&o.headline)))}));
                let mut ctx = format!("{} · case `{}`", date(o.at.0, &o.at.1), self.case_id);
                if let Some(url) = &self.console_url {
                    ctx.push_str(&format!(" · <{url}|open in Arbiter>"));
                }
                blocks.push(json!({"type": "context", "elements": [mrkdwn(&ctx)]}));
            }
        }
        blocks
    }

    /// `chat.postMessage` arguments for `channel`.
    pub fn post(&self, channel: &str) -> Value {
        json!({"channel": channel, "text": self.text(), "blocks": self.blocks(), "unfurl_links": false})
    }

    /// `chat.update` arguments for the message `ts` in `channel`.
    pub fn update(&self, channel: &str, ts: &str) -> Value {
        json!({"channel": channel, "ts": ts, "text": self.text(), "blocks": self.blocks()})
    }
}

/// The answer to a modal submission that replaces the form with a notice
/// (the answer was recorded, and what the case still needs).
pub fn notice_view(title: &str, text: &str) -> Value {
    json!({
        "response_action": "update",
        "view": {
            "type": "modal",
            "title": plain(title, 24),
            "close": plain("Close", 24),
            "blocks": [{"type": "section", "text": mrkdwn(text)}],
        }
    })
}

/// `chat.postMessage` arguments for a note in the case message's thread.
pub fn thread_note(channel: &str, thread_ts: &str, text: &str) -> Value {
    json!({"channel": channel, "thread_ts": thread_ts, "text": clip(text, 3000), "unfurl_links": false})
}

/// `chat.postEphemeral` arguments: a message only `user` sees.
pub fn ephemeral(channel: &str, user: &str, text: &str) -> Value {
    json!({"channel": channel, "user": user, "text": clip(text, 3000)})
}

/// Which answer a modal collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Approve as proposed.
    Approve,
    /// Reject.
    Reject,
    /// Approve edited arguments.
    Modify,
}

impl Choice {
    /// The name the API uses (`approve`, `reject`, `modify`).
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Approve => "approve",
            Choice::Reject => "reject",
            Choice::Modify => "modify",
        }
    }

    /// From a button's action id.
    pub fn from_action(action_id: &str) -> Option<Choice> {
        match action_id {
            APPROVE => Some(Choice::Approve),
            REJECT => Some(Choice::Reject),
            MODIFY => Some(Choice::Modify),
            _ => None,
        }
    }

    /// From the API name.
    pub fn parse(s: &str) -> Option<Choice> {
        [Choice::Approve, Choice::Reject, Choice::Modify].into_iter().find(|c| c.as_str() == s)
    }
}

/// `views.open` arguments: the modal that asks for the rationale (and, for
/// `Modify`, the edited arguments) of an answer to `card`'s case.
/// `min_rationale` is the server's minimum length.
pub fn answer_modal(trigger_id: &str, card: &CaseCard, choice: Choice, min_rationale: usize) -> Value {
    let (title, submit) = match choice {
        Choice::Approve => ("Approve", "Approve"),
        Choice::Reject => ("Reject", "Reject"),
        Choice::Modify => ("Modify and approve", "Approve changes"),
    };
    let meta = json!({"project": card.project, "case": card.case_id, "choice": choice.as_str()}).to_string();
    let mut blocks = vec![
        json!({"type": "section", "text": mrkdwn(&format!("*{}* proposed by {} · case `{}`", escape(&card.title()), escape(&card.agent), card.case_id))}),
        json!({
            "type": "input", "block_id": "rationale",
            "label": plain("Rationale", 2000),
            "hint": plain(&format!("Why, in your words (at least {min_rationale} characters); it is recorded with your answer."), 2000),
            "element": {"type": "plain_text_input", "action_id": "value", "multiline": true,
                        "min_length": min_rationale.clamp(1, 3000), "max_length": 3000}
        }),
        json!({
            "type": "input", "block_id": "failure_modes", "optional": true,
            "label": plain("Failure modes", 2000),
            "hint": plain("Tags for learning across cases, comma-separated (e.g. wrong_target, low_evidence).", 2000),
            "element": {"type": "plain_text_input", "action_id": "value", "max_length": 500}
        }),
    ];
    if choice == Choice::Modify {
        let args = serde_json::to_string_pretty(&card.args).unwrap_or_default();
        blocks.push(json!({
            "type": "input", "block_id": "args",
            "label": plain("Arguments (JSON)", 2000),
            "hint": plain("Edit the arguments the agent will use; the policy checks them like a new action.", 2000),
            "element": {"type": "plain_text_input", "action_id": "value", "multiline": true, "initial_value": clip(&args, 3000)}
        }));
    }
    json!({
        "trigger_id": trigger_id,
        "view": {
            "type": "modal",
            "callback_id": ANSWER_MODAL,
            "private_metadata": meta,
            "title": plain(title, 24),
            "submit": plain(submit, 24),
            "close": plain("Cancel", 24),
            "blocks": blocks,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> CaseCard {
        CaseCard {
            project: "default".into(),
            case_id: "c1".into(),
            action: "isolate_host".into(),
            subject: Some("srv-1".into()),
            agent: "soc-agent".into(),
            args: json!({"host": "srv-1", "note": "<script>"}),
            reasons: vec!["crown_jewel: the host is tagged crown_jewel".into()],
            confidence: Some(0.62),
            threshold: Some(0.8),
            severity: "high".into(),
            reviewers: vec!["soc_analyst".into()],
            approvals_needed: 2,
            approved_by: vec!["alice".into()],
            deadline: (1_800_000_000, "2027-01-15 08:00 UTC".into()),
            claimed_by: None,
            console_url: Some("https://arbiter.example.com/cases/c1".into()),
            outcome: None,
        }
    }

    #[test]
    fn an_open_case_has_buttons_and_a_deadline_in_each_readers_time_zone() {
        let m = card().post("C1");
        let text = m.to_string();
        assert!(text.contains("<!date^1800000000^{date_short_pretty} at {time}|2027-01-15 08:00 UTC>"), "{text}");
        assert!(text.contains("0.62 (threshold 0.80)") && text.contains("1 of 2 (alice)"));
        assert!(text.contains("&lt;script&gt;") && !text.contains("<script>"), "agent text is escaped");
        let actions = m["blocks"].as_array().unwrap().iter().find(|b| b["type"] == "actions").unwrap();
        let ids: Vec<&str> =
            actions["elements"].as_array().unwrap().iter().map(|e| e["action_id"].as_str().unwrap()).collect();
        assert_eq!(ids, [CLAIM, APPROVE, REJECT, MODIFY, OPEN]);
        assert_eq!(actions["elements"][1]["value"], "default/c1");
    }

    #[test]
    fn a_decided_case_shows_the_outcome_instead_of_buttons() {
        let mut c = card();
        c.outcome = Some(Outcome {
            headline: "Approved".into(),
            by: vec!["alice".into(), "bob".into()],
            rationale: Some("confirmed malware".into()),
            at: (1_800_000_100, "2027-01-15 08:01 UTC".into()),
        });
        let m = c.update("C1", "123.456");
        let text = m.to_string();
        assert!(
            !text.contains(APPROVE)
                && text.contains("*Approved* by *alice, bob*")
                && text.contains("confirmed malware")
        );
        assert_eq!(m["ts"], "123.456");
    }

    #[test]
    fn modals_stay_within_slacks_limits() {
        let long = CaseCard { action: "a".repeat(400), args: json!({"x": "y".repeat(5000)}), ..card() };
        let m = answer_modal("trig", &long, Choice::Modify, 10);
        assert_eq!(m["view"]["title"]["text"].as_str().unwrap().chars().count(), 18);
        let args = m["view"]["blocks"][3]["element"]["initial_value"].as_str().unwrap();
        assert!(args.chars().count() <= 3000);
        let meta: Value = serde_json::from_str(m["view"]["private_metadata"].as_str().unwrap()).unwrap();
        assert_eq!(meta, json!({"project": "default", "case": "c1", "choice": "modify"}));
        assert!(long.blocks()[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
    }
}
