//! Slack, as Arbiter speaks it: everything here follows Slack's published
//! contract, and nothing here knows about stores or HTTP servers.
//!
//! - [`signature`]: verifying a request from Slack (signing secret, `v0`
//!   HMAC-SHA256 over `v0:{timestamp}:{body}`, timestamp within five minutes).
//! - [`message`]: the Block Kit message of an approval case (action, subject,
//!   arguments, triggers, confidence against threshold, the SLA deadline in
//!   each reader's time zone, buttons), its decided form, thread notes, and
//!   the modals that ask for a rationale or edited arguments.
//! - [`interaction`]: the interaction payloads Slack sends (button clicks,
//!   modal submissions) and the answers a modal submission takes.
//! - [`api`]: a Web API client (`chat.postMessage`, `chat.update`,
//!   `views.open`, ...) that reports `ok: false` errors and 429 `Retry-After`.

pub mod api;
pub mod interaction;
pub mod message;
pub mod signature;
