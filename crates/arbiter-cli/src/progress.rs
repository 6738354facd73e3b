//! Progress bars for long work (loading history, replays, generating the demo,
//! migrations): drawn on stderr only when it is a terminal, so pipes, logs and
//! tests see nothing but the command's own output.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// A bar (or a spinner when the total is unknown), or nothing off a terminal.
pub struct Progress(Option<ProgressBar>);

fn on_terminal() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("ARBITER_NO_PROGRESS").is_none()
}

fn bar(len: Option<u64>, template: &str, what: &str) -> Progress {
    if !on_terminal() {
        return Progress(None);
    }
    let b = match len {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    b.set_style(style.progress_chars("=> "));
    b.set_message(what.to_string());
    b.enable_steady_tick(Duration::from_millis(200));
    Progress(Some(b))
}

impl Progress {
    /// Work measured in bytes of a file, e.g. parsing a history file.
    pub fn bytes(len: u64, what: &str) -> Progress {
        bar(Some(len), "{msg} [{bar:30}] {bytes}/{total_bytes} ({eta} left)", what)
    }

    /// Work measured in items whose total is known.
    pub fn items(len: u64, what: &str) -> Progress {
        bar(Some(len), "{msg} [{bar:30}] {human_pos}/{human_len} ({eta} left)", what)
    }

    /// Work whose size is not known: a spinner with the time so far.
    pub fn spinner(what: &str) -> Progress {
        bar(None, "{spinner} {msg} ({elapsed})", what)
    }

    /// Move to `pos`.
    pub fn set(&self, pos: u64) {
        if let Some(b) = &self.0 {
            b.set_position(pos);
        }
    }

    /// Advance by `n`.
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    /// Change what the bar says.
    pub fn message(&self, what: &str) {
        if let Some(b) = &self.0 {
            b.set_message(what.to_string());
        }
    }
}

impl Drop for Progress {
    /// The bar disappears when the work is done (or fails), leaving the output clean.
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
