//! End-to-end tests: the real `arbiter` binary, started on a free port, driven over HTTP.

mod api;
mod browser;
mod cli;
mod contract;
mod demo;
mod durability;
mod mcp;
mod readme;
mod receipts;
mod replicas;
mod review;
mod sdk;
mod support;
mod traces;
mod tuning;
