//! Checks a parsed expression and turns it into a [`Program`]: identifiers are
//! resolved to slots, constants are folded, regexes are compiled, and constant
//! string lists become hash sets.

use super::parse::{BinOp, Expr, ExprKind, Span, SyntaxError, UnOp, parse};
use regex::Regex;
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;

/// The variables a condition can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Root {
    /// `name`: the action class.
    Name,
    /// `args`: the tool arguments.
    Args,
    /// `confidence`: the agent's confidence, or null.
    Confidence,
    /// `signals`: other signals.
    Signals,
    /// `context`: free-form context.
    Context,
    /// `agent`: `{name, key_id}` of the caller.
    Agent,
    /// `trace_id`: the trace id, or null.
    TraceId,
}

impl Root {
    fn lookup(name: &str) -> Option<Root> {
        Some(match name {
            "name" => Root::Name,
            "args" => Root::Args,
            "confidence" => Root::Confidence,
            "signals" => Root::Signals,
            "context" => Root::Context,
            "agent" => Root::Agent,
            "trace_id" => Root::TraceId,
            _ => return None,
        })
    }

    /// Every variable name, for error messages and docs.
    pub const NAMES: &'static str = "name, args, confidence, signals, context, agent, trace_id";
}

/// A problem found while checking an expression, with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// Where in the expression.
    pub span: Span,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at offset {})", self.message, self.span.start)
    }
}

impl From<SyntaxError> for CompileError {
    fn from(e: SyntaxError) -> Self {
        CompileError { span: e.span, message: e.message }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// String methods taking one string argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrFn {
    StartsWith,
    EndsWith,
    Contains,
}

/// Conversion functions: `int()`, `uint()`, `double()`, `string()`, `bool()`, and the `lowerAscii()`/`upperAscii()` string methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conv {
    Int,
    UInt,
    Double,
    String,
    Bool,
    Lower,
    Upper,
}

/// Comprehension macros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Macro {
    All,
    Exists,
    ExistsOne,
    Filter,
    Map,
}

/// The compiled form that the evaluator walks.
#[derive(Debug)]
pub(crate) enum Node {
    Const(Value),
    UInt(u64),
    Var(Root),
    Local(usize),
    Select(Box<Node>, Box<str>),
    Has(Box<Node>, Box<str>),
    Index(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    In(Box<Node>, Box<Node>),
    InSet(Box<Node>, HashSet<Box<str>>),
    List(Vec<Node>),
    Size(Box<Node>),
    Str(StrFn, Box<Node>, Box<Node>),
    Matches(Box<Node>, Box<Regex>),
    MatchesDyn(Box<Node>, Box<Node>),
    Conv(Conv, Box<Node>),
    Comprehension { kind: Macro, range: Box<Node>, slot: usize, filter: Option<Box<Node>>, body: Box<Node> },
}

/// A checked, compiled condition, ready to evaluate many times.
#[derive(Debug)]
pub struct Program {
    pub(crate) root: Node,
    pub(crate) locals: usize,
    /// Action classes this condition can only match, when it starts with a
    /// conjunct `name == "x"` or `name in [...]`; used to index triggers.
    pub implied_actions: Option<Vec<String>>,
}

impl Program {
    /// The variables the condition reads.
    pub fn roots(&self) -> std::collections::BTreeSet<Root> {
        let mut out = std::collections::BTreeSet::new();
        self.root.roots(&mut out);
        out
    }

    /// Whether the condition reads field `field` of variable `root`
    /// (`signals.mcp_hints`, `has(signals.mcp_hints)`, `signals["mcp_hints"]`).
    pub fn reads_field(&self, root: Root, field: &str) -> bool {
        self.root.reads_field(root, field)
    }
}

impl Node {
    fn children(&self) -> Vec<&Node> {
        match self {
            Node::Const(_) | Node::UInt(_) | Node::Local(_) | Node::Var(_) => vec![],
            Node::Select(a, _)
            | Node::Has(a, _)
            | Node::Not(a)
            | Node::Neg(a)
            | Node::InSet(a, _)
            | Node::Size(a)
            | Node::Matches(a, _)
            | Node::Conv(_, a) => vec![a],
            Node::Index(a, b)
            | Node::And(a, b)
            | Node::Or(a, b)
            | Node::Cmp(_, a, b)
            | Node::Arith(_, a, b)
            | Node::In(a, b)
            | Node::Str(_, a, b)
            | Node::MatchesDyn(a, b) => vec![a, b],
            Node::Cond(a, b, c) => vec![a, b, c],
            Node::List(items) => items.iter().collect(),
            Node::Comprehension { range, filter, body, .. } => {
                let mut v: Vec<&Node> = vec![range, body];
                v.extend(filter.as_deref());
                v
            }
        }
    }

    fn reads_field(&self, root: Root, field: &str) -> bool {
        let here = match self {
            Node::Select(a, f) | Node::Has(a, f) => matches!(**a, Node::Var(r) if r == root) && &**f == field,
            Node::Index(a, b) => {
                matches!(**a, Node::Var(r) if r == root) && matches!(&**b, Node::Const(Value::String(s)) if s == field)
            }
            _ => false,
        };
        here || self.children().into_iter().any(|c| c.reads_field(root, field))
    }

    fn roots(&self, out: &mut std::collections::BTreeSet<Root>) {
        if let Node::Var(r) = self {
            out.insert(*r);
        }
        self.children().into_iter().for_each(|c| c.roots(out));
    }
}

/// Parse, check and compile a condition.
pub fn compile(src: &str) -> Result<Program, CompileError> {
    let expr = parse(src)?;
    let mut c = Compiler { scopes: Vec::new(), max_locals: 0 };
    let root = c.node(&expr)?;
    Ok(Program { root, locals: c.max_locals, implied_actions: implied_actions(&expr) })
}

fn implied_actions(e: &Expr) -> Option<Vec<String>> {
    match &e.kind {
        ExprKind::Binary(BinOp::And, a, b) => implied_actions(a).or_else(|| implied_actions(b)),
        ExprKind::Binary(BinOp::Eq, a, b) => match (&a.kind, &b.kind) {
            (ExprKind::Ident(n), ExprKind::Str(s)) | (ExprKind::Str(s), ExprKind::Ident(n)) if n == "name" => {
                Some(vec![s.clone()])
            }
            _ => None,
        },
        ExprKind::Binary(BinOp::In, a, b) => match (&a.kind, &b.kind) {
            (ExprKind::Ident(n), ExprKind::List(items)) if n == "name" => items
                .iter()
                .map(|i| match &i.kind {
                    ExprKind::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => None,
        },
        _ => None,
    }
}

struct Compiler {
    scopes: Vec<String>,
    max_locals: usize,
}

fn err(span: Span, message: impl Into<String>) -> CompileError {
    CompileError { span, message: message.into() }
}

impl Compiler {
    fn node(&mut self, e: &Expr) -> Result<Node, CompileError> {
        let n = match &e.kind {
            ExprKind::Null => Node::Const(Value::Null),
            ExprKind::Bool(b) => Node::Const(Value::Bool(*b)),
            ExprKind::Int(i) => Node::Const(Value::from(*i)),
            // JSON numbers would lose the type: `1u` must stay a uint
            ExprKind::UInt(u) => Node::UInt(*u),
            ExprKind::Double(d) => Node::Const(
                serde_json::Number::from_f64(*d)
                    .map(Value::Number)
                    .ok_or_else(|| err(e.span, "number is not finite"))?,
            ),
            ExprKind::Str(s) => Node::Const(Value::String(s.clone())),
            ExprKind::Ident(name) => {
                if let Some(slot) = self.scopes.iter().rposition(|s| s == name) {
                    Node::Local(slot)
                } else if let Some(root) = Root::lookup(name) {
                    Node::Var(root)
                } else {
                    return Err(err(e.span, format!("unknown variable `{name}` (available: {})", Root::NAMES)));
                }
            }
            ExprKind::Select(target, field) => Node::Select(Box::new(self.node(target)?), field.as_str().into()),
            ExprKind::Index(target, idx) => Node::Index(Box::new(self.node(target)?), Box::new(self.node(idx)?)),
            ExprKind::List(items) => {
                let nodes = items.iter().map(|i| self.node(i)).collect::<Result<Vec<_>, _>>()?;
                if nodes.iter().all(|n| matches!(n, Node::Const(_))) {
                    Node::Const(Value::Array(
                        nodes.into_iter().map(|n| if let Node::Const(v) = n { v } else { unreachable!() }).collect(),
                    ))
                } else {
                    Node::List(nodes)
                }
            }
            ExprKind::Map(entries) => {
                let mut m = serde_json::Map::new();
                for (k, v) in entries {
                    let (Node::Const(Value::String(k)), Node::Const(v)) = (self.node(k)?, self.node(v)?) else {
                        return Err(err(e.span, "map literals must have constant string keys and constant values"));
                    };
                    m.insert(k, v);
                }
                Node::Const(Value::Object(m))
            }
            ExprKind::Unary(UnOp::Not, inner) => Node::Not(Box::new(self.node(inner)?)),
            ExprKind::Unary(UnOp::Neg, inner) => Node::Neg(Box::new(self.node(inner)?)),
            ExprKind::Cond(c, a, b) => {
                Node::Cond(Box::new(self.node(c)?), Box::new(self.node(a)?), Box::new(self.node(b)?))
            }
            ExprKind::Binary(op, a, b) => {
                let (l, r) = (Box::new(self.node(a)?), self.node(b)?);
                match op {
                    BinOp::Or => Node::Or(l, Box::new(r)),
                    BinOp::And => Node::And(l, Box::new(r)),
                    BinOp::Eq => Node::Cmp(Cmp::Eq, l, Box::new(r)),
                    BinOp::Ne => Node::Cmp(Cmp::Ne, l, Box::new(r)),
                    BinOp::Lt => Node::Cmp(Cmp::Lt, l, Box::new(r)),
                    BinOp::Le => Node::Cmp(Cmp::Le, l, Box::new(r)),
                    BinOp::Gt => Node::Cmp(Cmp::Gt, l, Box::new(r)),
                    BinOp::Ge => Node::Cmp(Cmp::Ge, l, Box::new(r)),
                    BinOp::Add => Node::Arith(Arith::Add, l, Box::new(r)),
                    BinOp::Sub => Node::Arith(Arith::Sub, l, Box::new(r)),
                    BinOp::Mul => Node::Arith(Arith::Mul, l, Box::new(r)),
                    BinOp::Div => Node::Arith(Arith::Div, l, Box::new(r)),
                    BinOp::Rem => Node::Arith(Arith::Rem, l, Box::new(r)),
                    BinOp::In => match &r {
                        Node::Const(Value::Array(items)) if items.iter().all(Value::is_string) => {
                            Node::InSet(l, items.iter().filter_map(Value::as_str).map(Box::from).collect())
                        }
                        _ => Node::In(l, Box::new(r)),
                    },
                }
            }
            ExprKind::Call { target, func, args } => self.call(e.span, target.as_deref(), func, args)?,
        };
        Ok(n)
    }

    fn arity(&self, span: Span, func: &str, args: &[Expr], n: usize) -> Result<(), CompileError> {
        if args.len() != n {
            return Err(err(span, format!("`{func}` takes {n} argument(s), got {}", args.len())));
        }
        Ok(())
    }

    fn call(&mut self, span: Span, target: Option<&Expr>, func: &str, args: &[Expr]) -> Result<Node, CompileError> {
        match (func, target) {
            ("has", None) => {
                self.arity(span, func, args, 1)?;
                let ExprKind::Select(inner, field) = &args[0].kind else {
                    return Err(err(args[0].span, "`has` takes a field selection such as `has(args.host)`"));
                };
                Ok(Node::Has(Box::new(self.node(inner)?), field.as_str().into()))
            }
            ("size", None) => {
                self.arity(span, func, args, 1)?;
                Ok(Node::Size(Box::new(self.node(&args[0])?)))
            }
            ("size", Some(t)) => {
                self.arity(span, func, args, 0)?;
                Ok(Node::Size(Box::new(self.node(t)?)))
            }
            ("int" | "uint" | "double" | "string" | "bool" | "dyn", None) => {
                self.arity(span, func, args, 1)?;
                let conv = match func {
                    "int" => Conv::Int,
                    "uint" => Conv::UInt,
                    "double" => Conv::Double,
                    "bool" => Conv::Bool,
                    // `dyn()` only turns off type checking, which this subset does at run time anyway
                    "dyn" => return self.node(&args[0]),
                    _ => Conv::String,
                };
                Ok(Node::Conv(conv, Box::new(self.node(&args[0])?)))
            }
            ("lowerAscii" | "upperAscii", Some(t)) => {
                self.arity(span, func, args, 0)?;
                let conv = if func == "lowerAscii" { Conv::Lower } else { Conv::Upper };
                Ok(Node::Conv(conv, Box::new(self.node(t)?)))
            }
            ("startsWith" | "endsWith" | "contains", Some(t)) => {
                self.arity(span, func, args, 1)?;
                let f = match func {
                    "startsWith" => StrFn::StartsWith,
                    "endsWith" => StrFn::EndsWith,
                    _ => StrFn::Contains,
                };
                Ok(Node::Str(f, Box::new(self.node(t)?), Box::new(self.node(&args[0])?)))
            }
            ("matches", _) => {
                let (subject, pattern) = match target {
                    Some(t) => {
                        self.arity(span, func, args, 1)?;
                        (t, &args[0])
                    }
                    None => {
                        self.arity(span, func, args, 2)?;
                        (&args[0], &args[1])
                    }
                };
                let subject = Box::new(self.node(subject)?);
                match &pattern.kind {
                    ExprKind::Str(p) => {
                        let re = regex::RegexBuilder::new(p)
                            .size_limit(1 << 20)
                            .build()
                            .map_err(|e| err(pattern.span, format!("invalid regular expression: {e}")))?;
                        Ok(Node::Matches(subject, Box::new(re)))
                    }
                    _ => Ok(Node::MatchesDyn(subject, Box::new(self.node(pattern)?))),
                }
            }
            ("all" | "exists" | "exists_one" | "filter" | "map", Some(t)) => {
                let kind = match func {
                    "all" => Macro::All,
                    "exists" => Macro::Exists,
                    "exists_one" => Macro::ExistsOne,
                    "filter" => Macro::Filter,
                    _ => Macro::Map,
                };
                let ok_arity = args.len() == 2 || (kind == Macro::Map && args.len() == 3);
                if !ok_arity {
                    return Err(err(
                        span,
                        format!("`{func}` takes a variable and an expression, e.g. `{func}(x, x > 0)`"),
                    ));
                }
                let ExprKind::Ident(var) = &args[0].kind else {
                    return Err(err(args[0].span, format!("the first argument of `{func}` must be a variable name")));
                };
                let range = Box::new(self.node(t)?);
                self.scopes.push(var.clone());
                self.max_locals = self.max_locals.max(self.scopes.len());
                let slot = self.scopes.len() - 1;
                let result = (|| {
                    let (filter, body) = if args.len() == 3 {
                        (Some(Box::new(self.node(&args[1])?)), Box::new(self.node(&args[2])?))
                    } else {
                        (None, Box::new(self.node(&args[1])?))
                    };
                    Ok(Node::Comprehension { kind, range, slot, filter, body })
                })();
                self.scopes.pop();
                result
            }
            (f, _) => Err(err(
                span,
                format!(
                    "unknown function `{f}` (available: has, size, int, uint, double, string, bool, dyn, startsWith, endsWith, contains, matches, lowerAscii, upperAscii, all, exists, exists_one, filter, map)"
                ),
            )),
        }
    }
}
