//! Canonical JSON (RFC 8785, the JSON Canonicalization Scheme) and the args
//! digest that binds a human approval to the exact arguments it approved.
//!
//! Object members are sorted by their UTF-16 code units, strings use the
//! shortest escapes, and numbers are written as ECMAScript writes doubles,
//! exactly as the RFC says: every number is first the IEEE double nearest to
//! it, so an integer outside ±2^53 is rounded (`9007199254740993` is written
//! `9007199254740992`) and any independent RFC 8785 implementation computes
//! the same digest. Identifiers that need every digit belong in strings.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// The RFC 8785 canonical text of `v`.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

/// The digest that binds an approval to arguments: `sha256:` and the hex
/// SHA-256 of the canonical JSON of `args`.
pub fn args_digest(args: &Value) -> String {
    format!("sha256:{}", hex_sha256(canonical_json(args).as_bytes()))
}

fn hex_sha256(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in d {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The largest integer every double below it represents exactly.
const SAFE_INTEGER: u64 = 1 << 53;

fn write_number(out: &mut String, n: &serde_json::Number) {
    // Integers within ±2^53 print the same as ECMAScript's doubles (and
    // faster); every other number is the double nearest to it (`as f64`
    // rounds to nearest, ties to even, as ECMAScript's parsing does).
    if let Some(i) = n.as_i64()
        && i.unsigned_abs() <= SAFE_INTEGER
    {
        let _ = write!(out, "{i}");
        return;
    }
    let f = match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => i as f64,
        (None, Some(u)) => u as f64,
        _ => n.as_f64().unwrap_or(0.0),
    };
    write_double(out, f);
}

/// ECMAScript's Number.prototype.toString for a finite double (ECMA-262, 7.1.12.1).
fn write_double(out: &mut String, f: f64) {
    if f == 0.0 {
        out.push('0');
        return;
    }
    if f < 0.0 {
        out.push('-');
    }
    // Rust's `{:e}` gives the shortest digits that round-trip, like ECMAScript.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    ties_to_even(&mut digits, exp, f.abs());
    let k = digits.len() as i32;
    let n = exp + 1; // the decimal point sits after `n` digits
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e >= 0 { "+" } else { "-" }, e.abs());
    }
}

/// ECMAScript breaks a tie between two equally close shortest digit strings
/// toward the even one; Rust's formatter rounds such ties up. A tie means the
/// double is exactly the midpoint, which its exact expansion shows.
fn ties_to_even(digits: &mut String, exp: i32, f: f64) {
    let Some(&last) = digits.as_bytes().last() else { return };
    if (last - b'0').is_multiple_of(2) {
        return;
    }
    let exact = format!("{f:.1100e}");
    let Some((m, e)) = exact.split_once('e') else { return };
    if e.parse::<i32>().ok() != Some(exp) {
        return;
    }
    let exact_digits: String = m.chars().filter(char::is_ascii_digit).collect();
    let mut lower = digits[..digits.len() - 1].to_string();
    lower.push((last - 1) as char);
    let midpoint = format!("{lower}5");
    let is_tie = exact_digits.starts_with(&midpoint) && exact_digits[midpoint.len()..].bytes().all(|b| b == b'0');
    let text =
        if lower.len() > 1 { format!("{}.{}e{exp}", &lower[..1], &lower[1..]) } else { format!("{lower}e{exp}") };
    let lower_round_trips = text.parse::<f64>().is_ok_and(|x| x == f);
    if is_tie && lower_round_trips {
        *digits = lower;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc_8785_example() {
        // RFC 8785, section 3.2.2 (the input is parsed, then canonicalized).
        let input = r#"{
            "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;
        let v: Value = serde_json::from_str(input).unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    #[test]
    fn rfc_8785_number_samples() {
        // From RFC 8785 appendix B (IEEE 754 value -> canonical text).
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, want) in cases {
            let mut s = String::new();
            write_double(&mut s, f64::from_bits(*bits));
            assert_eq!(&s, want, "bits {bits:016x}");
        }
    }

    #[test]
    fn members_sort_by_utf16_code_units() {
        // RFC 8785 section 3.2.3: U+1F600 (surrogates D83D DE00) sorts before U+FB33.
        let v = json!({"\u{fb33}": 1, "\u{1f600}": 2, "a": 3, "\r": 4});
        assert_eq!(canonical_json(&v), "{\"\\r\":4,\"a\":3,\"\u{1f600}\":2,\"\u{fb33}\":1}");
    }

    #[test]
    fn digest_ignores_order_and_whitespace_but_not_values() {
        let a: Value = serde_json::from_str(r#"{"host": "dc-01", "tags": ["a", "b"], "n": 1.50}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"n":1.5,"tags":["a","b"],"host":"dc-01"}"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"n":1.5,"tags":["b","a"],"host":"dc-01"}"#).unwrap();
        assert_eq!(args_digest(&a), args_digest(&b));
        assert_ne!(args_digest(&a), args_digest(&c));
        assert!(args_digest(&a).starts_with("sha256:"));
    }

    #[test]
    fn integers_outside_the_safe_range_are_doubles_as_the_rfc_says() {
        // RFC 8785 section 3.2.2.3 via ECMAScript: 2^53 + 1 is not a double; the nearest is 2^53
        assert_eq!(canonical_json(&json!(9007199254740993u64)), "9007199254740992");
        assert_eq!(canonical_json(&json!(-9007199254740993i64)), "-9007199254740992");
        assert_eq!(canonical_json(&json!(9007199254740992u64)), "9007199254740992");
        assert_eq!(canonical_json(&json!(u64::MAX)), "18446744073709552000");
        assert_eq!(canonical_json(&json!(i64::MIN)), "-9223372036854776000");
        assert_eq!(canonical_json(&json!(1e21)), "1e+21");
        assert_eq!(canonical_json(&json!(-0.0)), "0");
    }
}
