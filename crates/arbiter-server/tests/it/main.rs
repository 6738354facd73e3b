//! The server in process, on port 0, with an injected clock: time moves when
//! the test says so, and the sweeper and webhook worker run when called.

mod audits;
mod clock;
mod documented;
mod drift;
mod isolation;
mod learning;
mod paging;
mod policy_versions;
mod projects;
mod review_workflow;
mod slack;
mod sso;
mod support;
mod traces;
mod trust;
mod webhooks;
mod withdraw;
