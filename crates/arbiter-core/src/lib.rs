//! Arbiter's domain: its vocabulary (actions, verdicts, decisions, cases, reviews) as types, and the pure logic that
//! combines them. Nothing in this crate does IO, spawns tasks or reads the clock
//! directly; the shell crates pass time and data in.

/// A closed set of values with stable wire names (the API, storage and
/// forms all use them): what option lists and parsers are built from.
pub trait WireName: Copy + Eq + 'static {
    /// Every value, in declaration order.
    fn all() -> &'static [Self];
    /// The value's wire name.
    fn wire_name(self) -> &'static str;
    /// The value with this wire name.
    fn from_wire_name(s: &str) -> Option<Self> {
        Self::all().iter().copied().find(|v| v.wire_name() == s)
    }
}

/// `ALL`, `as_str` and `parse` (and [`WireName`]) for a fieldless enum, from its variants' wire
/// names (the same names serde uses; a test in each module holds them equal).
macro_rules! wire_names {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            /// Every value, in declaration order (option lists are built from it).
            pub const ALL: &'static [$t] = &[$(<$t>::$v),*];

            /// The name used in the API, storage and forms.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(<$t>::$v => $s),*
                }
            }

            /// Parse a name written by [`Self::as_str`].
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($s => Some(<$t>::$v),)*
                    _ => None,
                }
            }
        }

        impl $crate::WireName for $t {
            fn all() -> &'static [$t] {
                <$t>::ALL
            }

            fn wire_name(self) -> &'static str {
                self.as_str()
            }
        }
    };
}

pub mod action;
pub mod audit;
pub mod canonical;
pub mod case;
pub mod dataset;
pub mod decision;
pub mod diff;
pub mod drift;
pub mod duration;
pub mod escalation;
pub mod identity;
pub mod insight;
pub mod key;
pub mod lesson;
pub mod policy_version;
pub mod project;
pub mod queue;
pub mod rate;
pub mod receipt;
pub mod recurrence;
pub mod replay;
pub mod review;
pub mod rng;
pub mod sampling;
pub mod search;
pub mod stats;
pub mod suggest;
pub mod time;
pub mod trace;
pub mod verdict;
pub mod webhook;
pub mod workflow;

#[cfg(test)]
mod learning_tests;

pub use action::{Action, ActionError, Limits};
pub use case::{Answer, Case, CaseKind, CaseState, Claim, Comment};
pub use decision::{Decision, DecisionStatus, FinalSource, FinalVerdict, FiredTrigger, Outcome, ToolResult};
pub use duration::{DurationError, HumanDuration};
pub use escalation::{Escalation, Tier};
pub use identity::{Grant, GroupRule, Identity, Person};
pub use key::{Principal, Role};
pub use project::{Membership, Project, ProjectId};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use verdict::{Severity, Verdict};
pub use workflow::{Actor, CaseCommand, CaseError, CaseEvent, ModificationCheck};
