//! What a `tools/call` becomes, and what the MCP client is told: pure
//! functions from the call to the proposal, and from the decision to the
//! text of a refusal. No IO here, so every rule is unit-tested.

use arbiter_api::decisions::DecisionRequest;
use arbiter_core::decision::FinalSource;
use arbiter_core::{Action, Decision, Verdict};
use serde_json::{Map, Value, json};

/// The separator between an upstream's name and its tool's name: `fs.write_file`.
pub const SEPARATOR: char = '.';

/// The namespaced name of an upstream's tool.
pub fn namespaced(upstream: &str, tool: &str) -> String {
    format!("{upstream}{SEPARATOR}{tool}")
}

/// The upstream and the tool a namespaced name points at. Upstream names
/// never contain the separator, so the first one splits; a tool's own name may.
pub fn split(name: &str) -> Option<(&str, &str)> {
    name.split_once(SEPARATOR).filter(|(u, t)| !u.is_empty() && !t.is_empty())
}

/// Whether `name` may name an upstream: letters, digits, `_` and `-`, so that
/// namespaced tool names stay valid action names.
pub fn valid_upstream_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The tool's annotations as policy signals, under `mcp_hints`: only the
/// hints the tool server gave. They are the server's description of itself,
/// not facts, which is why they are named hints (see docs/mcp.md).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hints {
    /// `readOnlyHint`.
    pub read_only: Option<bool>,
    /// `destructiveHint`.
    pub destructive: Option<bool>,
    /// `idempotentHint`.
    pub idempotent: Option<bool>,
    /// `openWorldHint`.
    pub open_world: Option<bool>,
}

impl Hints {
    fn to_value(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in [
            ("read_only", self.read_only),
            ("destructive", self.destructive),
            ("idempotent", self.idempotent),
            ("open_world", self.open_world),
        ] {
            if let Some(v) = v {
                m.insert(k.to_string(), Value::Bool(v));
            }
        }
        Value::Object(m)
    }
}

/// How the MCP client reaches the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The client launched the gateway and speaks on its stdin and stdout: one connection, one session.
    Stdio,
    /// Streamable HTTP: sessions are named by the client's `Mcp-Session-Id`, or absent (stateless requests).
    Http,
}

impl Transport {
    /// `stdio` or `http`, as recorded in `context.mcp.transport`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Stdio => "stdio",
            Transport::Http => "http",
        }
    }
}

/// Who is calling and over which connection: the decision's `context.mcp`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSite {
    /// The MCP session (the `Mcp-Session-Id` over HTTP, one per connection over stdio).
    pub session: String,
    /// The JSON-RPC id of the `tools/call` request.
    pub request_id: String,
    /// How the client reaches the gateway.
    pub transport: Transport,
    /// The client's `clientInfo.name` and `version`, as it introduced itself.
    pub client: Option<(String, String)>,
    /// A W3C `traceparent` the client passed in the request's `_meta`.
    pub traceparent: Option<String>,
}

impl CallSite {
    /// The idempotency key of the decision: the same request of the same
    /// session is one decision, however often the gateway has to ask (or the
    /// client re-sends it). Session and request id are hashed together, so
    /// any JSON-RPC id (spaces, any script, hundreds of characters) makes a
    /// valid key, and two sessions never share one.
    pub fn idempotency_key(&self) -> String {
        let digest = arbiter_core::canonical::args_digest(&json!([self.session, self.request_id]));
        format!("mcp:{}", digest.trim_start_matches("sha256:"))
    }

    /// The trace id of a well-formed `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`).
    pub fn trace_id(&self) -> Option<String> {
        let tp = self.traceparent.as_deref()?;
        let mut parts = tp.split('-');
        let (_version, trace, _span) = (parts.next()?, parts.next()?, parts.next()?);
        (trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()) && trace.bytes().any(|b| b != b'0'))
            .then(|| trace.to_ascii_lowercase())
    }
}

/// The proposal for one call of `upstream`'s `tool` with `args`.
pub fn proposal(upstream: &str, tool: &str, args: Value, hints: &Hints, site: &CallSite) -> DecisionRequest {
    let mut mcp = json!({
        "session": site.session,
        "request_id": site.request_id,
        "transport": site.transport.as_str(),
        "upstream": upstream,
        "tool": tool,
    });
    if let Some((name, version)) = &site.client {
        mcp["client"] = json!({"name": name, "version": version});
    }
    DecisionRequest {
        action: Action {
            name: namespaced(upstream, tool),
            args,
            confidence: None,
            signals: json!({ "mcp_hints": hints.to_value() }),
        },
        trace_id: site.trace_id(),
        context: Some(json!({ "mcp": mcp })),
        event_time: None,
    }
}

/// What the gateway does with a decision that is final.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Run the tool with these arguments (the reviewer's modification, if any).
    Run {
        /// The namespaced tool to run (a reviewer may not change the tool, only its arguments).
        tool: String,
        /// The arguments.
        args: Value,
    },
    /// Tell the model it was not run, and why.
    Refuse(String),
}

/// The gateway's next step for a final decision.
pub fn next(d: &Decision) -> Next {
    let Some(f) = &d.final_verdict else {
        return Next::Refuse(format!("Arbiter has no final verdict for decision {} yet; the call was not run.", d.id));
    };
    let action = f.action.as_ref().unwrap_or(&d.action);
    if f.verdict == Verdict::Allow {
        if action.name != d.action.name {
            return Next::Refuse(format!(
                "A reviewer approved `{}` instead of `{}`; the gateway runs only the tool that was called, so \
                 nothing was run. Call `{}` if that is what you want (decision {}).",
                action.name, d.action.name, action.name, d.id
            ));
        }
        return Next::Run { tool: action.name.clone(), args: action.args.clone() };
    }
    Next::Refuse(refusal(d))
}

/// The text a refused call returns to the model: what happened, in words it
/// can act on, with the decision id for people.
pub fn refusal(d: &Decision) -> String {
    let Some(f) = &d.final_verdict else { return String::new() };
    let why = match f.source {
        FinalSource::Policy => {
            let reasons: Vec<String> = d
                .triggers
                .iter()
                .filter(|t| t.verdict == Verdict::Deny)
                .map(|t| format!("{} (`{}`)", t.reason.trim_end_matches('.'), t.name))
                .collect();
            if reasons.is_empty() {
                format!("Arbiter's policy denied this call: {}.", d.explanation)
            } else {
                format!("Arbiter's policy denied this call: {}.", reasons.join("; "))
            }
        }
        FinalSource::Review => {
            let who = if f.decided_by.is_empty() { "A reviewer".to_string() } else { f.decided_by.join(", ") };
            format!("{who} denied this call after review: {}", f.rationale)
        }
        FinalSource::SlaExpired => format!(
            "No reviewer answered in time, and the policy's fallback for `{}` is to deny: {}",
            d.action.name, f.rationale
        ),
        FinalSource::AgentCaseCap => {
            format!(
                "Too many of this agent's calls are already waiting for review; this one was denied: {}",
                f.rationale
            )
        }
        FinalSource::Withdrawn => format!("The call was withdrawn before a reviewer answered: {}", f.rationale),
    };
    format!(
        "{why}\nThe tool was not run. Do not retry the same call unchanged; change the approach or ask the user. \
         (Arbiter decision {})",
        d.id
    )
}

/// The `_meta.arbiter` object on every result the gateway returns for a decided call.
pub fn result_meta(d: &Decision) -> Value {
    let mut m = json!({ "decision_id": d.id, "verdict": d.verdict, "policy_hash": d.policy_hash });
    if let Some(f) = &d.final_verdict {
        m["final"] = json!({ "verdict": f.verdict, "source": f.source });
    }
    if let Some(c) = &d.case_id {
        m["case_id"] = json!(c);
    }
    m
}

/// The progress message while a case waits for a reviewer.
pub fn waiting_message(d: &Decision, waited_secs: u64) -> String {
    let roles = d
        .escalation
        .as_ref()
        .map(|e| e.reviewers.iter().cloned().collect::<Vec<_>>().join(", "))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "a reviewer".to_string());
    let case = d.case_id.as_deref().unwrap_or("?");
    format!("Waiting for {roles} to review `{}` (case {case}, {waited_secs}s so far)", d.action.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> CallSite {
        CallSite {
            session: "s-1".into(),
            request_id: "7".into(),
            transport: Transport::Stdio,
            client: Some(("claude-desktop".into(), "1.2".into())),
            traceparent: Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01".into()),
        }
    }

    #[test]
    fn names_split_at_the_first_separator() {
        assert_eq!(split("fs.write_file"), Some(("fs", "write_file")));
        assert_eq!(split("web.a.b"), Some(("web", "a.b")));
        assert_eq!(split("write_file"), None);
        assert_eq!(split(".x"), None);
        assert_eq!(split("fs."), None);
        assert_eq!(namespaced("fs", "write_file"), "fs.write_file");
        assert!(valid_upstream_name("server-everything_2"));
        assert!(!valid_upstream_name("a.b"));
        assert!(!valid_upstream_name(""));
    }

    #[test]
    fn a_call_becomes_an_action_with_hints_and_its_site() {
        let hints = Hints { destructive: Some(true), read_only: Some(false), ..Hints::default() };
        let p = proposal("fs", "write_file", json!({"path": "/srv/a"}), &hints, &site());
        assert_eq!(p.action.name, "fs.write_file");
        assert_eq!(p.action.args, json!({"path": "/srv/a"}));
        assert_eq!(p.action.confidence, None);
        assert_eq!(p.action.signals, json!({"mcp_hints": {"destructive": true, "read_only": false}}));
        let mcp = &p.context.as_ref().unwrap()["mcp"];
        assert_eq!(mcp["session"], "s-1");
        assert_eq!(mcp["request_id"], "7");
        assert_eq!(mcp["client"]["name"], "claude-desktop");
        assert_eq!(mcp["upstream"], "fs");
        assert_eq!(p.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        let key = site().idempotency_key();
        assert!(key.starts_with("mcp:") && key.len() == 68, "{key}");
        // any JSON-RPC id makes a valid key, different per session and id
        let odd = CallSite { request_id: format!("\"{} ü 请求\"", "x".repeat(300)), ..site() };
        let odd_key = odd.idempotency_key();
        assert!(odd_key.len() == 68 && odd_key.bytes().all(|b| b.is_ascii_graphic()), "{odd_key}");
        assert_ne!(odd_key, key);
        assert_ne!(CallSite { session: "s-2".into(), ..site() }.idempotency_key(), key);
        assert_ne!(CallSite { request_id: "\"7\"".into(), ..site() }.idempotency_key(), key, "7 and \"7\" differ");
        // No hints: an empty object, so a policy can test `has(signals.mcp_hints.destructive)`.
        let p = proposal("fs", "read", json!({}), &Hints::default(), &site());
        assert_eq!(p.action.signals, json!({"mcp_hints": {}}));
    }

    #[test]
    fn malformed_traceparents_give_no_trace_id() {
        for tp in ["", "00-abc-def-01", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "zz"] {
            let s = CallSite { traceparent: Some(tp.into()), ..site() };
            assert_eq!(s.trace_id(), None, "{tp}");
        }
    }

    fn decided(verdict: Verdict) -> Decision {
        use arbiter_core::decision::{Evaluation, Proposal};
        let p = proposal("fs", "write_file", json!({"path": "/srv/a"}), &Hints::default(), &site());
        let proposal = Proposal {
            id: "d-1".into(),
            agent: "ide-agent".into(),
            agent_key_id: "k".into(),
            idempotency_key: Some(site().idempotency_key()),
            action: p.action,
            trace_id: None,
            context: p.context.unwrap(),
            received_at: arbiter_core::Timestamp(1_000),
            event_time: None,
            subject: None,
        };
        let eval = Evaluation {
            verdict,
            triggers: vec![],
            escalation: None,
            explanation: "denied by `no_writes`".into(),
            condition_errors: vec![],
            threshold: None,
            audit: None,
        };
        Decision::from_evaluation(proposal, eval, "abc", 3)
    }

    #[test]
    fn an_allowed_call_runs_with_the_final_arguments() {
        let mut d = decided(Verdict::Allow);
        assert_eq!(next(&d), Next::Run { tool: "fs.write_file".into(), args: json!({"path": "/srv/a"}) });
        // A reviewer's modification: the modified arguments run.
        let f = d.final_verdict.as_mut().unwrap();
        f.source = FinalSource::Review;
        f.action = Some(Action { args: json!({"path": "/srv/b"}), ..d.action.clone() });
        assert_eq!(next(&d), Next::Run { tool: "fs.write_file".into(), args: json!({"path": "/srv/b"}) });
        // A modification naming another tool is not run in place of the one called.
        let f = d.final_verdict.as_mut().unwrap();
        f.action = Some(Action { name: "fs.delete".into(), ..d.action.clone() });
        assert!(matches!(next(&d), Next::Refuse(t) if t.contains("instead of `fs.write_file`")));
    }

    #[test]
    fn refusals_say_who_refused_and_that_nothing_ran() {
        let mut d = decided(Verdict::Deny);
        let Next::Refuse(t) = next(&d) else { panic!() };
        assert!(t.starts_with("Arbiter's policy denied this call: denied by `no_writes`."), "{t}");
        // The triggers' own reasons, when the policy describes them.
        d.triggers = vec![arbiter_core::decision::FiredTrigger {
            name: "no_writes".into(),
            verdict: Verdict::Deny,
            reason: "Nothing is written on Fridays.".into(),
        }];
        assert!(
            refusal(&d).starts_with("Arbiter's policy denied this call: Nothing is written on Fridays (`no_writes`).")
        );
        assert!(t.contains("The tool was not run") && t.contains("d-1"), "{t}");
        let f = d.final_verdict.as_mut().unwrap();
        f.source = FinalSource::Review;
        f.decided_by = vec!["ana".into()];
        f.rationale = "ana: not on a Friday".into();
        assert!(refusal(&d).starts_with("ana denied this call after review: ana: not on a Friday"));
        d.final_verdict.as_mut().unwrap().source = FinalSource::SlaExpired;
        assert!(refusal(&d).starts_with("No reviewer answered in time"));
        let meta = result_meta(&d);
        assert_eq!(meta["decision_id"], "d-1");
        assert_eq!(meta["final"]["source"], "sla_expired");
        // Not final yet: refused, never run.
        d.final_verdict = None;
        assert!(matches!(next(&d), Next::Refuse(_)));
    }
}
