//! Rate limits on proposals: a token bucket per key, refilled by the injected
//! clock, so a looping agent cannot open escalations as fast as it can post.

use crate::time::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// How fast a key may propose: `unlimited`, or a sustained rate with a burst
/// (`10/s`, `600/m`, `10/s:50`; the burst defaults to one second's worth, at least 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateLimit {
    /// No limit.
    Unlimited,
    /// A token bucket.
    Bucket {
        /// Tokens added per second.
        per_second: f64,
        /// Bucket size: how many requests may come at once after a quiet spell.
        burst: u32,
    },
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimit::Unlimited => f.write_str("unlimited"),
            RateLimit::Bucket { per_second, burst } => write!(f, "{per_second}/s:{burst}"),
        }
    }
}

/// The slowest rate a limit may have: one a hour.
pub const MIN_PER_SECOND: f64 = 1.0 / 3600.0;
/// The fastest rate a limit may have (above it, use `unlimited`).
pub const MAX_PER_SECOND: f64 = 1_000_000.0;
/// The largest burst a limit may allow.
pub const MAX_BURST: u32 = 1_000_000;

impl FromStr for RateLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("unlimited") || s.eq_ignore_ascii_case("off") {
            return Ok(RateLimit::Unlimited);
        }
        let bad = || format!("invalid rate limit `{s}`: write e.g. `10/s`, `600/m`, `10/s:50` or `unlimited`");
        let (rate, burst) = match s.split_once(':') {
            Some((r, b)) => (r, Some(b.trim().parse::<u32>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let (n, unit) = rate.split_once('/').ok_or_else(bad)?;
        let n: f64 = n.trim().parse().map_err(|_| bad())?;
        let per_second = match unit.trim() {
            "s" => n,
            "m" => n / 60.0,
            "h" => n / 3600.0,
            _ => return Err(bad()),
        };
        if !per_second.is_finite() || per_second <= 0.0 {
            return Err(bad());
        }
        // a bucket that refills slower than once an hour would answer `Retry-After` in years
        if !(MIN_PER_SECOND * (1.0 - 1e-9)..=MAX_PER_SECOND).contains(&per_second) {
            return Err(format!(
                "invalid rate limit `{s}`: the rate must be between 1/h and {MAX_PER_SECOND}/s (or `unlimited`)"
            ));
        }
        let burst = burst.unwrap_or_else(|| per_second.ceil().max(1.0) as u32);
        if burst == 0 || burst > MAX_BURST {
            return Err(format!("invalid rate limit `{s}`: the burst must be between 1 and {MAX_BURST}"));
        }
        Ok(RateLimit::Bucket { per_second, burst })
    }
}

impl Serialize for RateLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One key's bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    at: Timestamp,
}

impl TokenBucket {
    /// A full bucket for `limit` at `now`.
    pub fn full(limit: RateLimit, now: Timestamp) -> TokenBucket {
        let tokens = match limit {
            RateLimit::Unlimited => f64::INFINITY,
            RateLimit::Bucket { burst, .. } => f64::from(burst),
        };
        TokenBucket { tokens, at: now }
    }

    /// Take one token at `now`, or say how many milliseconds until one is there.
    pub fn take(&mut self, limit: RateLimit, now: Timestamp) -> Result<(), u64> {
        let RateLimit::Bucket { per_second, burst } = limit else { return Ok(()) };
        let elapsed = (now.0 - self.at.0).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * per_second).min(f64::from(burst));
        self.at = now.max(self.at);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            // (less a nanosecond of float noise, so 0.999999… ms reads as 1 ms)
            Err((((1.0 - self.tokens) / per_second) * 1000.0 - 1e-6).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_rates_no_bucket_can_serve() {
        // the trust review's `1e-300/s` was accepted and answered `Retry-After: 18446744073709552`
        for bad in ["1e-300/s", "0.5/h", "2000000/s", "10/s:0", "10/s:2000000", "1e400/s"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
        for good in ["1/h", "60/h", "1000000/s", "10/s:1000000"] {
            assert!(good.parse::<RateLimit>().is_ok(), "{good}");
        }
    }

    #[test]
    fn parses_rates_and_bursts() {
        assert_eq!("10/s".parse(), Ok(RateLimit::Bucket { per_second: 10.0, burst: 10 }));
        assert_eq!("120/m:5".parse(), Ok(RateLimit::Bucket { per_second: 2.0, burst: 5 }));
        assert_eq!("1/h".parse(), Ok(RateLimit::Bucket { per_second: 1.0 / 3600.0, burst: 1 }));
        assert_eq!("unlimited".parse(), Ok(RateLimit::Unlimited));
        for bad in ["10", "0/s", "-1/s", "10/d", "10/s:0", "x/s"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
        let r: RateLimit = "5/s:20".parse().unwrap();
        assert_eq!(r.to_string().parse::<RateLimit>(), Ok(r));
    }

    #[test]
    fn a_bucket_allows_the_burst_then_the_rate() {
        let limit: RateLimit = "2/s:3".parse().unwrap();
        let mut b = TokenBucket::full(limit, Timestamp(0));
        for _ in 0..3 {
            assert_eq!(b.take(limit, Timestamp(0)), Ok(()));
        }
        assert_eq!(b.take(limit, Timestamp(0)), Err(500), "the next token comes in half a second");
        assert_eq!(b.take(limit, Timestamp(499)), Err(1));
        assert_eq!(b.take(limit, Timestamp(500)), Ok(()));
        // a long pause refills to the burst, not beyond
        for _ in 0..3 {
            assert_eq!(b.take(limit, Timestamp(60_000)), Ok(()));
        }
        assert!(b.take(limit, Timestamp(60_000)).is_err());
        let mut free = TokenBucket::full(RateLimit::Unlimited, Timestamp(0));
        assert!((0..10_000).all(|_| free.take(RateLimit::Unlimited, Timestamp(0)).is_ok()));
    }
}
