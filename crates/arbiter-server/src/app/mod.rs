//! The operations Arbiter offers, written once. API routes and console pages
//! are thin adapters over these: they parse the request, call one operation,
//! and render its result.

pub mod cases;
pub mod clock;
pub mod decisions;
pub mod drift;
pub mod keys;
pub mod learning;
pub mod policy;
pub mod projects;
pub mod receipts;
pub mod reviews;
pub mod sla;
pub mod traces;
pub mod webhooks;
