//! Verdicts and severities, with the total orders that policy combination relies on.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What the policy says about one proposed action.
///
/// The derived order is the combination order: `Allow < Escalate < Deny`, so the
/// strictest verdict of several is their maximum ("deny beats escalate beats allow").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The agent may go ahead.
    Allow,
    /// A person must answer before the agent goes ahead.
    Escalate,
    /// The agent must not go ahead.
    Deny,
}

wire_names!(Verdict { Allow => "allow", Escalate => "escalate", Deny => "deny" });

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Verdict::Allow),
            "escalate" => Ok(Verdict::Escalate),
            "deny" => Ok(Verdict::Deny),
            other => Err(format!("unknown verdict `{other}` (expected allow, escalate or deny)")),
        }
    }
}

/// How urgent an escalation is; ordered from least to most urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Can wait for the normal queue.
    Low,
    /// The default.
    Medium,
    /// Answer soon.
    High,
    /// Answer now.
    Critical,
}

impl Severity {
    /// The lowercase name used in YAML and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!("unknown severity `{other}` (expected low, medium, high or critical)")),
        }
    }
}
