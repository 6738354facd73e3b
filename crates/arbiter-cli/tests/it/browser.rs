//! The reviewer console in a real browser: runs `tests/browser` (node's test
//! runner, playwright-core driving Debian's Chromium) against this binary,
//! single sign-on included (against `oidc-provider`, a real OpenID provider
//! the test starts on 127.0.0.1).
//! Without node, Chromium or `npm ci` in tests/browser it says so and skips,
//! unless ARBITER_REQUIRE_BROWSER=1 (set by .ci/run), where that is a failure.

use std::path::Path;
use std::process::Command;

#[test]
fn console_in_headless_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let missing: Vec<&str> = [
        (!node_ok).then_some("node"),
        (!Path::new(&chromium).exists()).then_some("chromium (apt-get install chromium)"),
        (!dir.join("node_modules/playwright-core").exists()).then_some("playwright-core (npm ci in tests/browser)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        let msg = format!("browser tests need {}", missing.join(", "));
        crate::support::skip("ARBITER_REQUIRE_BROWSER", &msg);
        return;
    }
    let out = Command::new("node")
        .arg("--test")
        .current_dir(&dir)
        .env("ARBITER_BIN", env!("CARGO_BIN_EXE_arbiter"))
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser tests failed:\n{text}");
    // A run that found no tests (or skipped some) must not pass: every test ran and passed.
    const TESTS: usize = 7;
    for line in [format!("# tests {TESTS}"), format!("# pass {TESTS}"), "# fail 0".to_string()] {
        assert!(text.lines().any(|l| l.trim() == line), "expected `{line}` in the browser test report:\n{text}");
    }
}
