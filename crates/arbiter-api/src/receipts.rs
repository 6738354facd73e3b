//! Receipts: the published keys and a receipt's single use.

use arbiter_core::receipt::{Receipt, ReceiptKey};
use serde::{Deserialize, Serialize};

/// `GET /v1/receipts/keys`: every key receipts are checked with, newest (the signing one) first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptKeys {
    /// The keys.
    pub keys: Vec<ReceiptKey>,
}

/// Body of `POST /v1/decisions/{id}/consume`: a gateway about to run the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumeRequest {
    /// The receipt it was given.
    pub receipt: Receipt,
    /// The arguments it is about to run (checked against the receipt's digest).
    pub args: serde_json::Value,
    /// Who consumes it (the gateway's name); the same consumer asking again gets the same answer.
    pub consumer: String,
}
