//! A CEL (Common Expression Language) subset: parsed, checked and compiled once
//! per policy, then evaluated against an action bound once per request.
//!
//! Supported: literals (null, bool, int, uint, double, string, lists, constant
//! maps), `! - * / % + - < <= > >= == != in && || ?:`, field selection,
//! indexing, `has()`, `size()`, `int() uint() double() string()`, string methods
//! `startsWith endsWith contains matches lowerAscii upperAscii`, and the macros
//! `all exists exists_one filter map`. Differences from full CEL are listed in
//! `docs/policy.md`.
//!
//! ```
//! use arbiter_cel::{Env, compile};
//! let args = serde_json::json!({"host": "web-17", "host_tags": ["server"]});
//! let none = serde_json::json!({});
//! let env = Env { name: "isolate_host", args: &args, confidence: Some(0.8), signals: &none, context: &none, agent: &none, trace_id: None };
//! let p = compile(r#""server" in args.host_tags && confidence < 0.9"#).unwrap();
//! assert_eq!(p.eval_bool(&env), Ok(true));
//! ```

mod compile;
mod eval;
mod parse;

pub use compile::{CompileError, Program, Root, compile};
pub use eval::{Env, EvalError, Val, agent_value};
pub use parse::{Span, SyntaxError, parse};
