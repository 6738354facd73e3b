//! The people directory: who signed in by single sign-on, and their Slack link.

use serde::{Deserialize, Serialize};

/// The body of `PUT /v1/people/{name}/slack`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSlack {
    /// The Slack user id (`U…`); `null` unlinks.
    pub slack_user: Option<String>,
}
