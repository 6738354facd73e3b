//! Any text: compiling it never panics, and whatever compiles evaluates (to a
//! value or an error) without panicking, against an action with every kind
//! of JSON value in it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let Ok(program) = arbiter_cel::compile(src) else { return };
    let args = serde_json::json!({
        "host": "web-17", "tags": ["a", "b"], "n": 3, "u": 18446744073709551615u64, "f": 0.5,
        "neg": -9223372036854775808i64, "nested": {"x": [1, {"y": null}]}, "empty": {}, "t": true
    });
    let none = serde_json::json!({});
    let env = arbiter_cel::Env {
        name: "isolate_host",
        args: &args,
        confidence: Some(0.7),
        signals: &args,
        context: &none,
        agent: &none,
        trace_id: Some("t-1"),
    };
    let _ = program.eval(&env);
    let _ = program.eval_bool(&env);
});
