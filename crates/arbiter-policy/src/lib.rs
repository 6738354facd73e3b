//! Arbiter's policy language: a YAML document of per-action settings and named
//! triggers whose conditions are written in a CEL subset. See `docs/policy.md`.
//!
//! ```
//! use arbiter_policy::{Policy, cel::Env};
//! let policy = Policy::parse("version: 1\npolicy: demo\ntriggers:\n  - name: no_admins\n    when: 'args.user == \"root\"'\n    verdict: deny\n").unwrap();
//! let args = serde_json::json!({"user": "root"});
//! let empty = serde_json::json!({});
//! let env = Env { name: "disable_user", args: &args, confidence: Some(0.99), signals: &empty, context: &empty, agent: &empty, trace_id: None };
//! assert_eq!(policy.evaluate(&env).verdict, arbiter_core::Verdict::Deny);
//! ```

pub mod backtest;
/// The condition language, re-exported: `arbiter_policy::cel::Env` and friends.
pub use arbiter_cel as cel;

/// The environment a policy evaluates `action` in: the proposing agent
/// ([`cel::agent_value`]), the request's context and trace id. (Binding an
/// action is the policy's business; the condition language knows no actions.)
pub fn env_of<'a>(
    action: &'a arbiter_core::Action,
    context: &'a serde_json::Value,
    agent: &'a serde_json::Value,
    trace_id: Option<&'a str>,
) -> cel::Env<'a> {
    cel::Env {
        name: &action.name,
        args: &action.args,
        confidence: action.confidence,
        signals: &action.signals,
        context,
        agent,
        trace_id,
    }
}
mod document;
mod engine;
pub mod rewrite;
pub mod suggest;
mod yaml;

pub use document::{PolicyError, PolicyErrors};
pub use engine::{ClassConfig, ConditionError, Evaluation, Policy, content_hash};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
