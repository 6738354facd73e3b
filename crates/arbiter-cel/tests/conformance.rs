//! The CEL conformance corpus: every test of the `simple` suite of
//! google/cel-spec (`tests/simple/testdata/{basic,comparisons,conversions,
//! fields,fp_math,integer_math,lists,logic,macros,parse,plumbing,string}`,
//! Apache-2.0), transcribed into `cel-spec-simple.jsonl`, one line each:
//!
//! - `expect`: the subset supports it and must give this value (`{"int": 1}`,
//!   `{"uint": 1}`, `{"double": "2.5"}`, `{"string": ..}`, `{"bool": ..}`,
//!   `{"null": null}`, `{"list": [..]}`) or `"error"`;
//! - `unsupported`: outside the subset; it must be refused when compiled
//!   (the reason is our compiler's message), never silently evaluated;
//! - `not_run`: the test needs what this harness cannot express (variables,
//!   a container, bytes or type values).
//!
//! When the subset grows, a case moves from `unsupported` to `expect`: this
//! test fails until the corpus says so.

use arbiter_cel::{Env, Val, compile};
use serde_json::{Value, json};

fn typed(v: &Val<'_>) -> Value {
    match v {
        Val::Null => json!({"null": null}),
        Val::Bool(b) => json!({"bool": b}),
        Val::Int(i) => json!({"int": i}),
        Val::UInt(u) => json!({"uint": u}),
        // as text: JSON has no infinities
        Val::Double(d) => json!({"double": format!("{d:?}")}),
        Val::Str(s) => json!({"string": s}),
        Val::Owned(s) => json!({"string": &**s}),
        Val::Json(Value::Array(a)) => json!({"list": a.iter().map(json_typed).collect::<Vec<_>>()}),
        Val::Json(o) => json!({"map": o}),
        Val::List(l) => json!({"list": l.iter().map(typed).collect::<Vec<_>>()}),
    }
}

fn json_typed(v: &Value) -> Value {
    match v {
        Value::Null => json!({"null": null}),
        Value::Bool(b) => json!({"bool": b}),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => json!({"int": i}),
            (None, Some(u)) => json!({"uint": u}),
            _ => json!({"double": format!("{:?}", n.as_f64().unwrap_or(f64::NAN))}),
        },
        Value::String(s) => json!({"string": s}),
        Value::Array(a) => json!({"list": a.iter().map(json_typed).collect::<Vec<_>>()}),
        o => json!({"map": o}),
    }
}

/// Whether a value we computed equals the expected one (doubles by value, NaN equal to NaN).
fn same(expected: &Value, got: &Value) -> bool {
    match (expected.get("double"), got.get("double")) {
        (Some(e), Some(g)) => {
            let num = |v: &Value| -> f64 { v.as_str().map_or_else(|| v.as_f64().unwrap(), |s| s.parse().unwrap()) };
            let (e, g) = (num(e), num(g));
            (e.is_nan() && g.is_nan()) || e == g
        }
        _ => match (expected.get("list"), got.get("list")) {
            (Some(Value::Array(e)), Some(Value::Array(g))) => {
                e.len() == g.len() && e.iter().zip(g).all(|(a, b)| same(a, b))
            }
            _ => expected == got,
        },
    }
}

#[test]
fn the_subset_agrees_with_the_cel_spec_simple_tests() {
    let corpus = include_str!("cel-spec-simple.jsonl");
    let empty = json!({});
    let env = Env {
        name: "",
        args: &empty,
        confidence: None,
        signals: &empty,
        context: &empty,
        agent: &empty,
        trace_id: None,
    };
    let (mut passed, mut refused, mut not_run) = (0, 0, 0);
    let mut failures = Vec::new();
    for line in corpus.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let (id, expr) = (case["id"].as_str().unwrap(), case["expr"].as_str().unwrap());
        if case.get("not_run").is_some() {
            not_run += 1;
            continue;
        }
        let compiled = compile(expr);
        if let Some(why) = case.get("unsupported") {
            match compiled {
                Err(_) => refused += 1,
                Ok(_) => failures.push(format!("{id}: `{expr}` compiles now; listed unsupported ({why})")),
            }
            continue;
        }
        let program = match compiled {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{id}: `{expr}` does not compile: {}", e.message));
                continue;
            }
        };
        let got = program.eval(&env);
        match (&case["expect"], got) {
            (Value::String(s), Err(_)) if s == "error" => passed += 1,
            (Value::String(s), Ok(v)) if s == "error" => {
                failures.push(format!("{id}: `{expr}` should be an error, gave {}", typed(&v)))
            }
            (want, Ok(v)) if same(want, &typed(&v)) => passed += 1,
            (want, Ok(v)) => failures.push(format!("{id}: `{expr}` gave {}, expected {want}", typed(&v))),
            (want, Err(e)) => failures.push(format!("{id}: `{expr}` failed ({e}), expected {want}")),
        }
    }
    assert!(failures.is_empty(), "{} of the corpus disagree:\n{}", failures.len(), failures.join("\n"));
    eprintln!("cel-spec simple: {passed} agree, {refused} refused as unsupported, {not_run} not run");
    assert!(passed >= 750, "the corpus lost cases: {passed}");
}
