//! Human-written durations such as `90s`, `15m`, `2h`, `1d`, `1h30m`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A whole number of seconds, written and read as `1h30m` style text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub u64);

/// Why a duration text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{text}`: {why} (write e.g. `90s`, `15m`, `2h`, `1d` or `1h30m`)")]
pub struct DurationError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl HumanDuration {
    /// The duration in seconds.
    pub fn as_secs(self) -> u64 {
        self.0
    }

    /// The duration in milliseconds, saturating.
    pub fn as_millis(self) -> i64 {
        i64::try_from(self.0.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

impl FromStr for HumanDuration {
    type Err = DurationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |why| DurationError { text: text.to_string(), why };
        let s = text.trim();
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return Err(err("unknown unit (use s, m, h or d)")),
            };
            if digits.is_empty() {
                return Err(err("a unit must follow a number"));
            }
            let n: u64 = digits.parse().map_err(|_| err("number too large"))?;
            total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(|| err("number too large"))?;
            digits.clear();
        }
        if !digits.is_empty() {
            return Err(err("the last number has no unit"));
        }
        Ok(HumanDuration(total))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.0;
        if s == 0 {
            return f.write_str("0s");
        }
        for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if s >= len {
                write!(f, "{}{unit}", s / len)?;
                s %= len;
            }
        }
        Ok(())
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, secs) in [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1h30m", 5400)] {
            let d: HumanDuration = text.parse().unwrap();
            assert_eq!(d.as_secs(), secs, "{text}");
        }
        assert_eq!(HumanDuration(5400).to_string(), "1h30m");
        assert_eq!(HumanDuration(90).to_string(), "1m30s");
    }

    #[test]
    fn rejects_nonsense() {
        for text in ["", "10", "m", "5x", "99999999999999999999s"] {
            assert!(text.parse::<HumanDuration>().is_err(), "{text}");
        }
    }
}

/// A span of milliseconds for people, by its magnitude: `42s`, `4m`, `1h05m`.
/// Callers say whether it is overdue, left or past.
pub fn human_ms(ms: i64) -> String {
    let s = ms.unsigned_abs() / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod human_tests {
    use super::human_ms;

    #[test]
    fn spans_read_by_magnitude() {
        assert_eq!(human_ms(0), "0s");
        assert_eq!(human_ms(59_999), "59s");
        assert_eq!(human_ms(-240_000), "4m");
        assert_eq!(human_ms(3_900_000), "1h05m");
        assert_eq!(human_ms(i64::MIN), "2562047788015h12m");
    }
}
