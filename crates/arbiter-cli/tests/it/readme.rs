//! The README and the SOC walkthrough run as written: every ```sh block (not
//! ```sh norun), in order, in one bash script with `set -euo pipefail`, in a
//! fresh directory holding the repository's `examples/`, with this `arbiter`
//! on the PATH. For the README a server is started the way the README starts
//! it, on a free port: its address replaces `http://127.0.0.1:8080`.
//!
//! The blocks need bash, curl and jq. Without them the test says so and
//! skips, unless ARBITER_REQUIRE_README_TOOLS=1 (set by .ci/run, which
//! installs jq), where that is a failure.

use crate::support::{Server, bin};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The ```sh blocks of a markdown file that are meant to run, in order.
fn runnable_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) => {
                let words: Vec<&str> = info.split_whitespace().collect();
                // every fence opens a block; only `sh` ones without `norun` are kept
                current = Some(if words.first() == Some(&"sh") && !words.contains(&"norun") {
                    String::new()
                } else {
                    "\u{0}skip".into()
                });
            }
            (Some(block), Some(_)) => {
                if !block.starts_with('\u{0}') {
                    blocks.push(std::mem::take(block));
                }
                current = None;
            }
            (Some(block), None) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// Whether bash, curl and jq are here; otherwise skip (or fail where they are required).
fn tools_present() -> bool {
    let missing: Vec<&str> = ["bash", "curl", "jq"]
        .into_iter()
        .filter(|t| Command::new(t).arg("--version").output().map_or(true, |o| !o.status.success()))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!("the README's commands need {} (apt-get install {})", missing.join(", "), missing.join(" "));
    crate::support::skip("ARBITER_REQUIRE_README_TOOLS", &msg);
    false
}

/// Run `script` with bash in `dir`, this binary first on the PATH; returns stdout, failing with everything on error.
fn run_script(dir: &Path, script: &str) -> String {
    std::os::unix::fs::symlink(root().join("examples"), dir.join("examples")).unwrap();
    let bin_dir = Path::new(bin()).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(dir)
        .env("PATH", path)
        .env("ARBITER_NO_PROGRESS", "1")
        .env_remove("ARBITER_URL")
        .env_remove("ARBITER_KEY")
        .env_remove("ARBITER_DB")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "the script failed ({}):\n--- script ---\n{script}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_readme_runs_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let blocks = runnable_blocks(&readme);
    // the first block (demo and test suite) and the server's start are not run here: the
    // demo has its own test, and the server is started below exactly as the README starts it
    assert!(
        readme.contains("```sh norun\ncargo run --release -p arbiter-cli -- demo"),
        "the README opens with the demo"
    );
    assert!(readme.contains("```sh norun\ncargo build --release -p arbiter-cli"), "the README starts the server");
    assert!(blocks.len() >= 5, "the README's runnable blocks: {blocks:?}");
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("arbiter.db"), &[]);
    let script = blocks.join("\n").replace("http://127.0.0.1:8080", &server.url);
    let out = run_script(dir.path(), &script);
    // What the README says the commands print, they print.
    for expected in [
        r#"{"verdict":"allow","status":"final"}"#,
        r#"{"verdict":"escalate","status":"pending","triggers":["isolate_server"]}"#,
        r#"{"status":"final","final":{"verdict":"allow","decided_by":["alice"]}}"#,
    ] {
        assert!(out.contains(expected), "expected `{expected}` in:\n{out}");
        assert!(readme.contains(&format!("# {expected}")), "the README shows `{expected}`");
    }
    assert!(out.contains("escalated share"), "tune printed its result:\n{out}");
    assert!(out.contains("decisions would change verdict"), "the backtest ran:\n{out}");
}

#[test]
fn the_walkthrough_runs_as_written() {
    let doc = std::fs::read_to_string(root().join("docs/soc-walkthrough.md")).unwrap();
    let blocks = runnable_blocks(&doc);
    assert!(!blocks.is_empty(), "the walkthrough has runnable blocks");
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run_script(dir.path(), &blocks.join("\n"));
    assert!(out.contains("The failure stopped recurring"), "{out}");
}

#[test]
fn blocks_are_found_and_norun_is_honoured() {
    let md = "text\n```sh\necho one\n```\n```sh norun\necho two\n```\n```\nnot sh\n```\n```sh\necho three\n```\n";
    assert_eq!(runnable_blocks(md), ["echo one\n", "echo three\n"]);
}

/// The crates the workspace has, from `cargo metadata`.
fn workspace_crates() -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(root())
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<String> =
        meta["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();
    names.sort();
    names
}

/// The crates a layout map (the first code block after `heading`) names, as `  <crate>/ …` lines.
fn mapped_crates(markdown: &str, heading: &str) -> Vec<String> {
    let after = &markdown[markdown.find(heading).unwrap_or_else(|| panic!("no {heading:?}"))..];
    let block = after.split("```").nth(1).unwrap_or("");
    let mut names: Vec<String> = block
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.split_whitespace().next()?.strip_suffix('/'))
        .filter(|n| n.starts_with("arbiter-"))
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

/// The maps of the code (the README's layout, CONTRIBUTING's) name every crate
/// of the workspace and nothing else: a crate added without a line in the map,
/// or one the map still names after it went, fails here.
#[test]
fn the_layout_maps_name_every_crate() {
    let crates = workspace_crates();
    assert!(crates.len() >= 12 && crates.contains(&"arbiter-tuning".to_string()), "{crates:?}");
    for (file, heading) in [("README.md", "## Layout"), ("CONTRIBUTING.md", "## Layout")] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        assert_eq!(mapped_crates(&text, heading), crates, "{file}'s map and the workspace disagree");
    }
}
