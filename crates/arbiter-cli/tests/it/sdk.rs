//! The Python SDK's own tests (pytest, sdk/python/tests), run against this
//! build's `arbiter` binary: the clients, `guard`, receipts, the models against
//! the OpenAPI document, and the LangGraph and OpenAI Agents SDK integrations
//! with the real libraries (only the models are the libraries' own fakes).
//!
//! Needs a Python with the SDK and its test dependencies
//! (`pip install -r sdk/python/requirements-test.txt && pip install --no-deps -e sdk/python`)
//! in $ARBITER_SDK_VENV; without it the test says so and skips, unless
//! ARBITER_REQUIRE_SDK=1 (set by .ci/run), where that is a failure.

use crate::support::bin;
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> Option<PathBuf> {
    crate::support::python_with("ARBITER_SDK_VENV", "arbiter_client, pytest, langgraph, agents, cryptography")
}

#[test]
fn the_python_sdk_passes_its_tests_against_this_build() {
    let Some(py) = python() else {
        let msg = "the SDK test needs a Python with sdk/python and its test dependencies \
                   (pip install -r sdk/python/requirements-test.txt && pip install --no-deps -e sdk/python; \
                   set ARBITER_SDK_VENV to the venv)";
        crate::support::skip("ARBITER_REQUIRE_SDK", msg);
        return;
    };
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/python");
    let out = Command::new(&py)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
        .current_dir(&sdk)
        .env("ARBITER_BIN", bin())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pytest failed:\n{text}");
    let summary = text.lines().rev().find(|l| l.contains(" passed")).unwrap_or_default().to_string();
    assert!(!summary.contains("skipped") && !summary.contains("failed"), "{summary}");
    eprintln!("sdk: {summary}");
}
