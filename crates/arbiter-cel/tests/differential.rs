//! Differential test against the `cel` crate (an independent CEL
//! implementation, dev-only): generated expressions over generated inputs
//! give the same value in both, or an error in both.
//!
//! The generator stays inside the common language: ints, strings, bools and
//! lists; no mixed int/double arithmetic (where this subset promotes to
//! double on purpose, see `docs/policy.md`).

use arbiter_cel::{Env, Val, compile};
use proptest::prelude::*;
use serde_json::{Value, json};

fn int_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        (-5i64..20).prop_map(|n| n.to_string()),
        Just("args.n".to_string()),
        Just("args.m".to_string()),
        Just("size(args.s)".to_string()),
        Just("size(args.tags)".to_string()),
        Just("int(args.digits)".to_string()),
    ]
}

fn int_expr() -> impl Strategy<Value = String> {
    int_leaf().prop_recursive(3, 10, 2, |inner| {
        (inner.clone(), proptest::sample::select(&["+", "-", "*", "/", "%"][..]), inner)
            .prop_map(|(a, op, b)| format!("({a} {op} {b})"))
    })
}

fn str_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(&["\"web\"", "\"db-1\"", "\"\"", "\"x\""][..]).prop_map(str::to_string),
        Just("args.s".to_string()),
        Just("args.tags[0]".to_string()),
        int_leaf().prop_map(|i| format!("string({i})")),
    ]
}

fn str_expr() -> impl Strategy<Value = String> {
    str_leaf().prop_recursive(2, 4, 2, |inner| (inner.clone(), inner).prop_map(|(a, b)| format!("({a} + {b})")))
}

fn bool_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("true".to_string()),
        Just("false".to_string()),
        Just("args.flag".to_string()),
        (int_expr(), proptest::sample::select(&["<", "<=", ">", ">=", "==", "!="][..]), int_expr())
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        (str_expr(), proptest::sample::select(&["<", "==", "!="][..]), str_expr())
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        (int_expr(), int_expr(), int_expr()).prop_map(|(a, b, c)| format!("{a} in [{b}, {c}]")),
        str_expr().prop_map(|s| format!("{s} in args.tags")),
        proptest::sample::select(&["has(args.n)", "has(args.zzz)", "has(args.s)"][..]).prop_map(str::to_string),
        (str_expr(), proptest::sample::select(&["startsWith", "endsWith", "contains"][..]), str_expr())
            .prop_map(|(s, m, t)| format!("{s}.{m}({t})")),
        str_expr().prop_map(|s| format!("args.tags.exists(t, t == {s})")),
        int_expr().prop_map(|n| format!("args.tags.all(t, size(t) < {n})")),
        str_expr().prop_map(|s| format!("args.tags.exists_one(t, t.startsWith({s}))")),
        int_expr().prop_map(|n| format!("args.list.filter(x, x > {n}).size() > 0")),
        int_expr().prop_map(|n| format!("args.list.map(x, x * {n}).exists(y, y > 10)")),
    ]
}

fn bool_expr() -> impl Strategy<Value = String> {
    bool_leaf().prop_recursive(3, 10, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
            inner.clone().prop_map(|a| format!("!({a})")),
            (inner.clone(), inner.clone(), inner).prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
        ]
    })
}

fn args() -> impl Strategy<Value = Value> {
    (
        -20i64..50,
        proptest::option::of(-3i64..3),
        proptest::sample::select(&["web-17", "db-1", "", "x"][..]),
        proptest::collection::vec(proptest::sample::select(&["web", "db-1", "x", "server"][..]), 1..4),
        proptest::collection::vec(-5i64..15, 0..4),
        any::<bool>(),
        proptest::sample::select(&["12", "-3", "0", "x"][..]),
    )
        .prop_map(|(n, m, s, tags, list, flag, digits)| {
            let mut a = json!({"n": n, "s": s, "tags": tags, "list": list, "flag": flag, "digits": digits});
            if let Some(m) = m {
                a["m"] = json!(m);
            }
            a
        })
}

/// A JSON input as the reference sees it, with JSON integers as CEL ints (as
/// the subset reads them; the crate's own serde bridge makes them uints).
fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(a) => a.iter().map(to_cel).collect::<Vec<_>>().into(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), to_cel(v)))
            .collect::<std::collections::HashMap<String, cel::Value>>()
            .into(),
    }
}

/// Our value in the reference's terms (only the kinds the generator produces).
fn ours_as_reference(v: &Val<'_>) -> Option<cel::Value> {
    Some(match v {
        Val::Bool(b) => cel::Value::Bool(*b),
        Val::Int(i) => cel::Value::Int(*i),
        Val::Str(s) => cel::Value::String(std::sync::Arc::new(s.to_string())),
        Val::Owned(s) => cel::Value::String(std::sync::Arc::new(s.to_string())),
        _ => return None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn agrees_with_the_cel_crate(expr in bool_expr(), a in args()) {
        let ours = compile(&expr).map_err(|e| TestCaseError::fail(format!("`{expr}` does not compile: {}", e.message)))?;
        let empty = json!({});
        let env = Env { name: "x", args: &a, confidence: None, signals: &empty, context: &empty, agent: &empty, trace_id: None };
        let ours = ours.eval(&env);
        let reference = cel::Program::compile(&expr).map_err(|e| TestCaseError::fail(format!("cel: {e:?}")))?;
        let mut ctx = cel::Context::default();
        ctx.add_variable_from_value("args", to_cel(&a));
        let theirs = reference.execute(&ctx);
        match (&ours, &theirs) {
            (Ok(v), Ok(w)) => {
                let mine = ours_as_reference(v);
                prop_assert_eq!(mine.as_ref(), Some(w), "`{}` on {}", expr, a);
            }
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "`{}` on {}: ours {:?}, cel {:?}", expr, a, ours.map(|v| format!("{v:?}")), theirs),
        }
    }
}
