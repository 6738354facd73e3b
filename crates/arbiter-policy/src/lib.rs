//! Arbiter's policy language: a YAML document of per-action settings and named
//! triggers whose conditions are written in a CEL subset.

pub mod cel;
