//! Evaluates a compiled [`Program`] against one bound action. Values borrow from
//! the action and the program, so evaluation allocates only for results that
//! are built (string concatenation, `filter`, `map`) and for error messages.

use super::compile::{Arith, Cmp, Conv, Macro, Node, Program, Root, StrFn};
use serde_json::Value;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::rc::Rc;

/// The action, bound once per request; every condition reads from it.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The action class.
    pub name: &'a str,
    /// Tool arguments (an object).
    pub args: &'a Value,
    /// The agent's confidence, if given.
    pub confidence: Option<f64>,
    /// Other signals (an object).
    pub signals: &'a Value,
    /// Free-form context (an object).
    pub context: &'a Value,
    /// The caller: `{name, key_id}`.
    pub agent: &'a Value,
    /// Trace id, if given.
    pub trace_id: Option<&'a str>,
}

/// The `agent` a condition reads: `{name, key_id}` of the proposing key.
pub fn agent_value(name: &str, key_id: &str) -> Value {
    serde_json::json!({"name": name, "key_id": key_id})
}

/// A value during evaluation.
#[derive(Debug, Clone)]
pub enum Val<'a> {
    /// `null`
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A floating-point number.
    Double(f64),
    /// A borrowed string.
    Str(&'a str),
    /// A string built during evaluation.
    Owned(Rc<str>),
    /// A JSON array or object from the action or the policy.
    Json(&'a Value),
    /// A list built during evaluation.
    List(Rc<Vec<Val<'a>>>),
}

/// Why a condition could not be evaluated (e.g. a missing field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError(pub Cow<'static, str>);

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

type R<'a> = Result<Val<'a>, EvalError>;

fn fail<T>(msg: &'static str) -> Result<T, EvalError> {
    Err(EvalError(Cow::Borrowed(msg)))
}

fn from_json(v: &Value) -> Val<'_> {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Val::Int(i)
            } else if let Some(u) = n.as_u64() {
                Val::UInt(u)
            } else {
                Val::Double(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Val::Str(s),
        other => Val::Json(other),
    }
}

impl<'a> Val<'a> {
    fn type_name(&self) -> &'static str {
        match self {
            Val::Null => "null",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::UInt(_) => "uint",
            Val::Double(_) => "double",
            Val::Str(_) | Val::Owned(_) => "string",
            Val::Json(Value::Object(_)) => "map",
            Val::Json(_) | Val::List(_) => "list",
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            Val::Owned(s) => Some(s),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match *self {
            Val::Int(i) => Some(i as f64),
            Val::UInt(u) => Some(u as f64),
            Val::Double(d) => Some(d),
            _ => None,
        }
    }

    /// Items of a list value, or None when this is not a list.
    fn items(&self) -> Option<Vec<Val<'a>>> {
        match self {
            Val::Json(Value::Array(a)) => Some(a.iter().map(from_json).collect()),
            Val::List(l) => Some(l.as_ref().clone()),
            _ => None,
        }
    }
}

fn num_cmp(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::UInt(x), Val::UInt(y)) => Some(x.cmp(y)),
        (Val::Int(x), Val::UInt(y)) => Some((*x as i128).cmp(&(*y as i128))),
        (Val::UInt(x), Val::Int(y)) => Some((*x as i128).cmp(&(*y as i128))),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn val_eq(a: &Val<'_>, b: &Val<'_>) -> bool {
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        return x == y;
    }
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Json(Value::Object(x)), Val::Json(Value::Object(y))) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| val_eq(&from_json(v), &from_json(w))))
        }
        _ => {
            if let (Some(x), Some(y)) = (a.items(), b.items()) {
                return x.len() == y.len() && x.iter().zip(&y).all(|(p, q)| val_eq(p, q));
            }
            num_cmp(a, b) == Some(Ordering::Equal)
        }
    }
}

fn ordering(a: &Val<'_>, b: &Val<'_>) -> Result<Ordering, EvalError> {
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        return Ok(x.cmp(y));
    }
    if let (Val::Bool(x), Val::Bool(y)) = (a, b) {
        return Ok(x.cmp(y));
    }
    num_cmp(a, b)
        .ok_or_else(|| EvalError(Cow::Owned(format!("cannot compare {} with {}", a.type_name(), b.type_name()))))
}

impl Program {
    /// Evaluate the expression to its value (conditions use [`Program::eval_bool`]).
    pub fn eval<'a>(&'a self, env: &Env<'a>) -> Result<Val<'a>, EvalError> {
        let mut locals = Vec::new();
        locals.resize(self.locals, Val::Null);
        ev(&self.root, env, &mut locals)
    }

    /// Evaluate the condition; a non-boolean result is an error.
    pub fn eval_bool(&self, env: &Env<'_>) -> Result<bool, EvalError> {
        let mut locals = Vec::new();
        locals.resize(self.locals, Val::Null);
        match ev(&self.root, env, &mut locals)? {
            Val::Bool(b) => Ok(b),
            other => Err(EvalError(Cow::Owned(format!("condition gave a {}, not a bool", other.type_name())))),
        }
    }
}

/// A list index: an int, a uint, or a double with an integral value (as in CEL);
/// `None` for a negative one (out of range).
fn list_index(i: &Val<'_>) -> Result<Option<usize>, EvalError> {
    Ok(match *i {
        Val::Int(x) => usize::try_from(x).ok(),
        Val::UInt(x) => usize::try_from(x).ok(),
        Val::Double(d) if d.fract() == 0.0 && d.is_finite() => (d >= 0.0).then_some(d as usize),
        _ => return fail("a list index must be an integer"),
    })
}

fn as_bool(v: R<'_>) -> Result<bool, EvalError> {
    match v? {
        Val::Bool(b) => Ok(b),
        other => Err(EvalError(Cow::Owned(format!("expected a bool, got {}", other.type_name())))),
    }
}

fn ev<'a>(n: &'a Node, env: &Env<'a>, loc: &mut Vec<Val<'a>>) -> R<'a> {
    Ok(match n {
        Node::Const(v) => from_json(v),
        Node::UInt(u) => Val::UInt(*u),
        Node::Var(root) => match root {
            Root::Name => Val::Str(env.name),
            Root::Args => from_json(env.args),
            Root::Confidence => env.confidence.map_or(Val::Null, Val::Double),
            Root::Signals => from_json(env.signals),
            Root::Context => from_json(env.context),
            Root::Agent => from_json(env.agent),
            Root::TraceId => env.trace_id.map_or(Val::Null, Val::Str),
        },
        Node::Local(i) => loc[*i].clone(),
        Node::Select(t, field) => match ev(t, env, loc)? {
            Val::Json(Value::Object(m)) => match m.get(&**field) {
                Some(v) => from_json(v),
                None => return Err(EvalError(Cow::Owned(format!("no such key: {field}")))),
            },
            other => {
                return Err(EvalError(Cow::Owned(format!("cannot select `{field}` from a {}", other.type_name()))));
            }
        },
        Node::Has(t, field) => match ev(t, env, loc)? {
            Val::Json(Value::Object(m)) => Val::Bool(m.contains_key(&**field)),
            Val::Null => Val::Bool(false),
            other => {
                return Err(EvalError(Cow::Owned(format!("has() needs a map, got {}", other.type_name()))));
            }
        },
        Node::Index(t, i) => {
            let (t, i) = (ev(t, env, loc)?, ev(i, env, loc)?);
            match (&t, &i) {
                (Val::Json(Value::Object(m)), k) if k.as_str().is_some() => {
                    let k = k.as_str().unwrap_or_default();
                    match m.get(k) {
                        Some(v) => from_json(v),
                        None => return Err(EvalError(Cow::Owned(format!("no such key: {k}")))),
                    }
                }
                (Val::Json(Value::Array(a)), Val::Int(_) | Val::UInt(_) | Val::Double(_)) => {
                    let idx = list_index(&i)?;
                    match idx.and_then(|x| a.get(x)) {
                        Some(v) => from_json(v),
                        None => return fail("index out of range"),
                    }
                }
                (Val::List(l), Val::Int(_) | Val::UInt(_) | Val::Double(_)) => {
                    let idx = list_index(&i)?;
                    match idx.and_then(|x| l.get(x)) {
                        Some(v) => v.clone(),
                        None => return fail("index out of range"),
                    }
                }
                _ => {
                    return Err(EvalError(Cow::Owned(format!(
                        "cannot index a {} with a {}",
                        t.type_name(),
                        i.type_name()
                    ))));
                }
            }
        }
        Node::Not(a) => Val::Bool(!as_bool(ev(a, env, loc))?),
        Node::Neg(a) => match ev(a, env, loc)? {
            Val::Int(i) => Val::Int(i.checked_neg().ok_or(EvalError(Cow::Borrowed("integer overflow")))?),
            Val::Double(d) => Val::Double(-d),
            other => {
                return Err(EvalError(Cow::Owned(format!("cannot negate a {}", other.type_name()))));
            }
        },
        // CEL's commutative logic: an error on one side is absorbed when the
        // other side alone decides the result.
        Node::And(a, b) => match as_bool(ev(a, env, loc)) {
            Ok(false) => Val::Bool(false),
            Ok(true) => Val::Bool(as_bool(ev(b, env, loc))?),
            Err(e) => match as_bool(ev(b, env, loc)) {
                Ok(false) => Val::Bool(false),
                _ => return Err(e),
            },
        },
        Node::Or(a, b) => match as_bool(ev(a, env, loc)) {
            Ok(true) => Val::Bool(true),
            Ok(false) => Val::Bool(as_bool(ev(b, env, loc))?),
            Err(e) => match as_bool(ev(b, env, loc)) {
                Ok(true) => Val::Bool(true),
                _ => return Err(e),
            },
        },
        Node::Cond(c, a, b) => {
            if as_bool(ev(c, env, loc))? {
                ev(a, env, loc)?
            } else {
                ev(b, env, loc)?
            }
        }
        Node::Cmp(op, a, b) => {
            let (a, b) = (ev(a, env, loc)?, ev(b, env, loc)?);
            Val::Bool(match op {
                Cmp::Eq => val_eq(&a, &b),
                Cmp::Ne => !val_eq(&a, &b),
                Cmp::Lt => ordering(&a, &b)? == Ordering::Less,
                Cmp::Le => ordering(&a, &b)? != Ordering::Greater,
                Cmp::Gt => ordering(&a, &b)? == Ordering::Greater,
                Cmp::Ge => ordering(&a, &b)? != Ordering::Less,
            })
        }
        Node::Arith(op, a, b) => arith(*op, ev(a, env, loc)?, ev(b, env, loc)?)?,
        Node::In(a, b) => {
            let (a, b) = (ev(a, env, loc)?, ev(b, env, loc)?);
            match &b {
                Val::Json(Value::Object(m)) => Val::Bool(a.as_str().is_some_and(|k| m.contains_key(k))),
                Val::Json(Value::Array(items)) => Val::Bool(items.iter().any(|i| val_eq(&a, &from_json(i)))),
                Val::List(items) => Val::Bool(items.iter().any(|i| val_eq(&a, i))),
                other => {
                    return Err(EvalError(Cow::Owned(format!("`in` needs a list or map, got {}", other.type_name()))));
                }
            }
        }
        Node::InSet(a, set) => Val::Bool(ev(a, env, loc)?.as_str().is_some_and(|s| set.contains(s))),
        Node::List(items) => Val::List(Rc::new(items.iter().map(|i| ev(i, env, loc)).collect::<Result<_, _>>()?)),
        Node::Size(a) => {
            let v = ev(a, env, loc)?;
            let n = match &v {
                Val::Json(Value::Array(x)) => x.len(),
                Val::Json(Value::Object(x)) => x.len(),
                Val::List(x) => x.len(),
                other => match other.as_str() {
                    Some(s) => s.chars().count(),
                    None => {
                        return Err(EvalError(Cow::Owned(format!("size() of a {}", other.type_name()))));
                    }
                },
            };
            Val::Int(n as i64)
        }
        Node::Str(f, a, b) => {
            let (a, b) = (ev(a, env, loc)?, ev(b, env, loc)?);
            let (Some(s), Some(p)) = (a.as_str(), b.as_str()) else {
                return fail("string function applied to a non-string");
            };
            Val::Bool(match f {
                StrFn::StartsWith => s.starts_with(p),
                StrFn::EndsWith => s.ends_with(p),
                StrFn::Contains => s.contains(p),
            })
        }
        Node::Matches(a, re) => match ev(a, env, loc)?.as_str() {
            Some(s) => Val::Bool(re.is_match(s)),
            None => return fail("matches() applied to a non-string"),
        },
        Node::MatchesDyn(a, p) => {
            let (a, p) = (ev(a, env, loc)?, ev(p, env, loc)?);
            let (Some(s), Some(p)) = (a.as_str(), p.as_str()) else {
                return fail("matches() applied to a non-string");
            };
            let re = regex::RegexBuilder::new(p)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| EvalError(Cow::Owned(format!("invalid regular expression: {e}"))))?;
            Val::Bool(re.is_match(s))
        }
        Node::Conv(c, a) => convert(*c, ev(a, env, loc)?)?,
        Node::Comprehension { kind, range, slot, filter, body } => {
            let range = ev(range, env, loc)?;
            let items: Vec<Val<'a>> = match &range {
                Val::Json(Value::Object(m)) => m.keys().map(|k| Val::Str(k.as_str())).collect(),
                other => other
                    .items()
                    .ok_or_else(|| EvalError(Cow::Owned(format!("cannot iterate over a {}", other.type_name()))))?,
            };
            comprehension(*kind, items, *slot, filter.as_deref(), body, env, loc)?
        }
    })
}

fn comprehension<'a>(
    kind: Macro,
    items: Vec<Val<'a>>,
    slot: usize,
    filter: Option<&'a Node>,
    body: &'a Node,
    env: &Env<'a>,
    loc: &mut Vec<Val<'a>>,
) -> R<'a> {
    let mut first_err = None;
    let mut count = 0usize;
    let mut out = Vec::new();
    for item in items {
        loc[slot] = item.clone();
        match kind {
            Macro::All | Macro::Exists => match as_bool(ev(body, env, loc)) {
                Ok(b) if b == (kind == Macro::Exists) => return Ok(Val::Bool(b)),
                Ok(_) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            },
            Macro::ExistsOne => count += as_bool(ev(body, env, loc))? as usize,
            Macro::Filter => {
                if as_bool(ev(body, env, loc))? {
                    out.push(item);
                }
            }
            Macro::Map => {
                if let Some(f) = filter
                    && !as_bool(ev(f, env, loc))?
                {
                    continue;
                }
                out.push(ev(body, env, loc)?);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(match kind {
        Macro::All => Val::Bool(true),
        Macro::Exists => Val::Bool(false),
        Macro::ExistsOne => Val::Bool(count == 1),
        Macro::Filter | Macro::Map => Val::List(Rc::new(out)),
    })
}

fn arith<'a>(op: Arith, a: Val<'a>, b: Val<'a>) -> R<'a> {
    let overflow = || EvalError(Cow::Borrowed("integer overflow or division by zero"));
    Ok(match (&a, &b) {
        (Val::Int(x), Val::Int(y)) => Val::Int(
            match op {
                Arith::Add => x.checked_add(*y),
                Arith::Sub => x.checked_sub(*y),
                Arith::Mul => x.checked_mul(*y),
                Arith::Div => x.checked_div(*y),
                Arith::Rem => x.checked_rem(*y),
            }
            .ok_or_else(overflow)?,
        ),
        (Val::UInt(x), Val::UInt(y)) => Val::UInt(
            match op {
                Arith::Add => x.checked_add(*y),
                Arith::Sub => x.checked_sub(*y),
                Arith::Mul => x.checked_mul(*y),
                Arith::Div => x.checked_div(*y),
                Arith::Rem => x.checked_rem(*y),
            }
            .ok_or_else(overflow)?,
        ),
        _ if a.as_f64().is_some() && b.as_f64().is_some() => {
            let (x, y) = (a.as_f64().unwrap_or_default(), b.as_f64().unwrap_or_default());
            Val::Double(match op {
                Arith::Add => x + y,
                Arith::Sub => x - y,
                Arith::Mul => x * y,
                Arith::Div => x / y,
                // CEL has no remainder of doubles
                Arith::Rem => return fail("`%` takes integers, not doubles"),
            })
        }
        _ if op == Arith::Add && a.as_str().is_some() && b.as_str().is_some() => {
            let mut s = String::from(a.as_str().unwrap_or_default());
            s.push_str(b.as_str().unwrap_or_default());
            Val::Owned(s.into())
        }
        _ if op == Arith::Add && a.items().is_some() && b.items().is_some() => {
            let mut l = a.items().unwrap_or_default();
            l.extend(b.items().unwrap_or_default());
            Val::List(Rc::new(l))
        }
        _ => {
            return Err(EvalError(Cow::Owned(format!(
                "no arithmetic between {} and {}",
                a.type_name(),
                b.type_name()
            ))));
        }
    })
}

fn convert(c: Conv, v: Val<'_>) -> R<'_> {
    let bad = |v: &Val<'_>| EvalError(Cow::Owned(format!("cannot convert a {} with {c:?}", v.type_name())));
    Ok(match c {
        Conv::Int => match &v {
            Val::Int(i) => Val::Int(*i),
            Val::UInt(u) => Val::Int(i64::try_from(*u).map_err(|_| bad(&v))?),
            Val::Double(d) if d.is_finite() && d.abs() < 9.2e18 => Val::Int(*d as i64),
            other => Val::Int(other.as_str().and_then(|s| s.trim().parse().ok()).ok_or_else(|| bad(&v))?),
        },
        Conv::UInt => match &v {
            Val::Int(i) => Val::UInt(u64::try_from(*i).map_err(|_| bad(&v))?),
            Val::UInt(u) => Val::UInt(*u),
            Val::Double(d) if d.is_finite() && *d >= 0.0 && *d < 1.8e19 => Val::UInt(*d as u64),
            other => Val::UInt(other.as_str().and_then(|s| s.trim().parse().ok()).ok_or_else(|| bad(&v))?),
        },
        Conv::Double => match v.as_f64() {
            Some(d) => Val::Double(d),
            None => Val::Double(v.as_str().and_then(|s| s.trim().parse().ok()).ok_or_else(|| bad(&v))?),
        },
        Conv::String => match &v {
            Val::Str(_) | Val::Owned(_) => v,
            Val::Int(i) => Val::Owned(i.to_string().into()),
            Val::UInt(u) => Val::Owned(u.to_string().into()),
            Val::Double(d) => Val::Owned(d.to_string().into()),
            Val::Bool(b) => Val::Owned(b.to_string().into()),
            _ => return Err(bad(&v)),
        },
        Conv::Bool => match &v {
            Val::Bool(_) => v,
            // CEL accepts these spellings
            _ => match v.as_str() {
                Some("true" | "t" | "True" | "TRUE" | "1") => Val::Bool(true),
                Some("false" | "f" | "False" | "FALSE" | "0") => Val::Bool(false),
                _ => return Err(bad(&v)),
            },
        },
        Conv::Lower | Conv::Upper => {
            let s = v.as_str().ok_or_else(|| bad(&v))?;
            Val::Owned(if c == Conv::Lower { s.to_ascii_lowercase() } else { s.to_ascii_uppercase() }.into())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::compile;
    use super::*;
    use serde_json::json;

    fn run(src: &str) -> Result<bool, EvalError> {
        let args =
            json!({"host": "web-17", "tags": ["server", "crown_jewel"], "count": 12, "nested": {"a": {"b": 1.5}}});
        let signals = json!({"anomaly": 0.7, "alert_type": "malware"});
        let ctx = json!({});
        let agent = json!({"name": "soc-agent", "key_id": "k1"});
        let env = Env {
            name: "isolate_host",
            args: &args,
            confidence: Some(0.8),
            signals: &signals,
            context: &ctx,
            agent: &agent,
            trace_id: None,
        };
        compile(src).unwrap().eval_bool(&env)
    }

    #[test]
    fn evaluates_the_supported_language() {
        let t = [
            r#"name == "isolate_host""#,
            r#"name in ["isolate_host", "block_ip"]"#,
            r#""crown_jewel" in args.tags"#,
            r#"args.tags.exists(t, t == "server")"#,
            r#"args.tags.all(t, size(t) > 3)"#,
            r#"args.tags.exists_one(t, t.startsWith("crown"))"#,
            r#"args.tags.filter(t, t.endsWith("er")) == ["server"]"#,
            r#"args.tags.map(t, t.upperAscii())[0] == "SERVER""#,
            "args.count > 10 && args.count <= 12u && args.count == 12.0",
            "confidence < 0.9 && signals.anomaly >= 0.5",
            "args.nested.a.b * 2 == 3",
            "has(args.host) && !has(args.user)",
            r#"args.host.matches("^web-[0-9]+$")"#,
            r#"matches(args.host, "web")"#,
            "trace_id == null",
            r#"agent.name + "!" == "soc-agent!""#,
            "int('42') == 42 && double(1) == 1.0 && string(5) == '5'",
            "args.missing == 1 || true",
            "!(false && args.missing == 1)",
            r#"(confidence > 0.5 ? "hi" : "lo") == "hi""#,
            r#"{"a": 1}.a == 1"#,
            r#"args["host"] == "web-17" && args.tags[1] == "crown_jewel""#,
            "size(signals) == 2 && args.tags.size() == 2",
            "[1, 2] + [3] == [1, 2, 3]",
        ];
        for src in t {
            assert_eq!(run(src), Ok(true), "{src}");
        }
    }

    #[test]
    fn errors_are_values_not_panics() {
        for src in [
            "args.missing == 1",
            "args.host > 1",
            "1 / 0 == 1",
            "args.tags[5] == 1",
            "9223372036854775807 + 1 > 0",
            "confidence",
        ] {
            assert!(run(src).is_err(), "{src}");
        }
    }

    #[test]
    fn compile_rejects_unknown_names_and_bad_regexes() {
        assert!(compile("nme == 'x'").unwrap_err().message.contains("unknown variable"));
        assert!(compile("args.x.frobnicate()").unwrap_err().message.contains("unknown function"));
        assert!(compile("args.x.matches('(')").unwrap_err().message.contains("regular expression"));
        assert!(compile("size(1, 2)").unwrap_err().message.contains("argument"));
        assert_eq!(compile(r#"name == "a" && x"#).err().map(|e| e.span.start), Some(15));
    }

    #[test]
    fn implied_actions_from_leading_conjuncts() {
        assert_eq!(compile(r#"name == "a" && confidence < 0.5"#).unwrap().implied_actions, Some(vec!["a".into()]));
        assert_eq!(compile(r#"name in ["a", "b"]"#).unwrap().implied_actions, Some(vec!["a".into(), "b".into()]));
        assert_eq!(compile(r#"name == "a" || confidence < 0.5"#).unwrap().implied_actions, None);
    }
}
