//! The API against its own OpenAPI document: schemathesis (from PyPI)
//! generates requests for every operation against a live server with an
//! admin key, and fails on any 5xx or any response that does not match the
//! document (status, content type, headers, body schema). Bounded to 30
//! examples per operation. Without schemathesis it says so and skips, unless
//! ARBITER_REQUIRE_SCHEMATHESIS=1 (set by .ci/run), where that is a failure.

use crate::support::Server;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `st` executable: `$ARBITER_VENV/bin/st`, else `st` on the PATH.
fn schemathesis() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = std::env::var("ARBITER_VENV")
        .ok()
        .map(|v| Path::new(&v).join("bin/st"))
        .into_iter()
        .chain(std::iter::once(PathBuf::from("st")))
        .collect();
    candidates.into_iter().find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_matches_its_openapi_document() {
    let Some(st) = schemathesis() else {
        let msg = "the contract test needs schemathesis (pip install -r tests/contract/requirements.txt; \
                   set ARBITER_VENV to the venv)";
        crate::support::skip("ARBITER_REQUIRE_SCHEMATHESIS", msg);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("arbiter.db"), &[]);
    // Some state to reach past the 404s: an agent, a pending case, a decision.
    let agent = s.loader("soc-agent").await;
    s.propose(&agent, &crate::support::escalating_action(), None).await;
    s.propose(&agent, &crate::support::allowed_action("A-1"), None).await;
    let seed = std::env::var("ARBITER_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let out = Command::new(&st)
        .arg("run")
        .arg(s.at("/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {}", s.admin())])
        .args(["--max-examples", "30", "--seed", &seed, "--no-color", "--workers", "1"])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
        ])
        .args(["--report-dir"])
        .arg(dir.path().join("report"))
        // its caches go to the temporary directory, not the source tree
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found problems (seed {seed}):\n{text}");
    // Every operation it selected was tested, and it selected (nearly) all that are served.
    let number_after = |label: &str| -> usize {
        let rest = text.split(label).nth(1).unwrap_or_else(|| panic!("no `{label}` in:\n{text}"));
        rest.trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    let (selected, tested) = (number_after("Selected:"), number_after("Tested:"));
    let served = arbiter_server::openapi::routes().len();
    assert!(
        tested == selected && selected + 1 >= served,
        "tested {tested} of {selected} selected, {served} served:\n{text}"
    );
}
