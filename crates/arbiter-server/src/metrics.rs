//! Prometheus metrics on an explicit registry (so tests can run several
//! servers in one process).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the decision counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `allow`, `deny` or `escalate`.
    pub verdict: String,
    /// The action class, or `other` for classes the policy does not list
    /// (agents choose names, so they must not choose label cardinality).
    pub action: String,
    /// The project whose policy decided.
    pub project: String,
}

/// Labels of per-project gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectLabel {
    /// The project.
    pub project: String,
}

/// All of Arbiter's metrics.
pub struct Metrics {
    registry: Registry,
    /// Decisions made, by verdict and action class.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Time to answer `POST /v1/decisions`, including the durable commit.
    pub decision_latency: Histogram,
    /// Time spent evaluating the policy.
    pub policy_eval: Histogram,
    /// Cases waiting for people, by project (refreshed from the store at scrape time).
    pub open_cases: Family<ProjectLabel, Gauge>,
    /// Requests currently long-polling for a final verdict.
    pub waiting_agents: Gauge,
    /// Proposals refused with 429 because the key exceeded its rate limit.
    pub rate_limited: Counter,
    /// Escalations that got their fallback at once because the agent had too many open cases.
    pub case_cap_fallbacks: Counter,
    /// Spans stored from OTLP exports.
    pub spans_received: Counter,
    /// The store's write batches, jobs and audit-chain lock times (refreshed at scrape time).
    pub store_writes: StoreWrites,
}

/// The store's group-commit counters, as gauges set from [`arbiter_store::WriteStats`] at scrape time.
#[derive(Default)]
pub struct StoreWrites {
    batches: Gauge,
    jobs: Gauge,
    lock_wait: Gauge<f64, std::sync::atomic::AtomicU64>,
    lock_held: Gauge<f64, std::sync::atomic::AtomicU64>,
    commit: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl StoreWrites {
    /// Set from the store's counters.
    pub fn set(&self, s: arbiter_store::WriteStats) {
        self.batches.set(s.batches as i64);
        self.jobs.set(s.jobs as i64);
        self.lock_wait.set(s.chain_lock_wait_micros as f64 / 1e6);
        self.lock_held.set(s.chain_lock_held_micros as f64 / 1e6);
        self.commit.set(s.commit_micros as f64 / 1e6);
    }
}

impl Metrics {
    /// Fresh metrics in their own registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("arbiter");
        let decisions = Family::<DecisionLabels, Counter>::default();
        let decision_latency = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let policy_eval = Histogram::new(exponential_buckets(0.000_000_5, 2.0, 16));
        let open_cases = Family::<ProjectLabel, Gauge>::default();
        let waiting_agents = Gauge::default();
        registry.register("decisions", "Decisions made, by verdict and action class", decisions.clone());
        registry.register(
            "decision_latency_seconds",
            "Time to answer POST /v1/decisions, including the durable commit",
            decision_latency.clone(),
        );
        registry.register(
            "policy_eval_seconds",
            "Time spent evaluating the policy for one action",
            policy_eval.clone(),
        );
        registry.register("open_cases", "Cases waiting for people", open_cases.clone());
        registry.register("waiting_agents", "Requests long-polling for a final verdict", waiting_agents.clone());
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited_proposals",
            "Proposals refused with 429 because the key exceeded its rate limit",
            rate_limited.clone(),
        );
        let case_cap_fallbacks = Counter::default();
        registry.register(
            "case_cap_fallbacks",
            "Escalations that got their fallback at once because the agent had too many open approval cases",
            case_cap_fallbacks.clone(),
        );
        let spans_received = Counter::default();
        registry.register("spans_received", "Spans stored from OTLP exports on /v1/traces", spans_received.clone());
        let store_writes = StoreWrites::default();
        registry.register(
            "store_write_batches",
            "Write transactions (group commits) since the store opened (PostgreSQL)",
            store_writes.batches.clone(),
        );
        registry.register("store_write_jobs", "Writes committed in those batches", store_writes.jobs.clone());
        registry.register(
            "store_chain_lock_wait_seconds",
            "Time write batches waited for the audit chain's lock (held by other replicas)",
            store_writes.lock_wait.clone(),
        );
        registry.register(
            "store_chain_lock_held_seconds",
            "Time write batches held the audit chain's lock, from taking it to the commit",
            store_writes.lock_held.clone(),
        );
        registry.register(
            "store_commit_seconds",
            "Of the time the lock was held, time spent in COMMIT (the WAL flush)",
            store_writes.commit.clone(),
        );
        Metrics {
            store_writes,
            spans_received,
            registry,
            decisions,
            decision_latency,
            policy_eval,
            open_cases,
            waiting_agents,
            rate_limited,
            case_cap_fallbacks,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
