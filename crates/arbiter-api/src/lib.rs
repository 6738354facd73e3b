//! The wire types every client shares: the bodies of Arbiter's HTTP requests
//! and responses, and its problem details. The server, the CLI, the demo, the
//! benchmarks and the tests all use these; the OpenAPI document describes
//! them (and a test checks every route and schema against the live server).

pub mod audit;
pub mod backtest;
pub mod cases;
pub mod decisions;
pub mod drift;
pub mod keys;
pub mod learning;
pub mod people;
pub mod policy;
pub mod problem;
pub mod projects;
pub mod receipts;
pub mod reviews;
pub mod webhooks;
