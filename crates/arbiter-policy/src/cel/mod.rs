//! A CEL (Common Expression Language) subset: parsed, checked and compiled once
//! per policy, then evaluated against an action bound once per request.
//!
//! Supported: literals (null, bool, int, uint, double, string, lists, constant
//! maps), `! - * / % + - < <= > >= == != in && || ?:`, field selection,
//! indexing, `has()`, `size()`, `int() uint() double() string()`, string methods
//! `startsWith endsWith contains matches lowerAscii upperAscii`, and the macros
//! `all exists exists_one filter map`. Differences from full CEL are listed in
//! `docs/policy.md`.

mod compile;
mod eval;
mod parse;

pub use compile::{CompileError, Program, Root, compile};
pub use eval::{Env, EvalError, Val, agent_value};
pub use parse::{Span, SyntaxError, parse};
