//! Agents waiting for a decision to become final. Each waiting request is a
//! parked future, not a thread, so many thousands can wait at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Wake-ups keyed by decision id.
#[derive(Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, Arc<Notify>>>,
}

/// A registration; dropping it removes the entry when nobody else waits.
pub struct Waiter<'a> {
    owner: &'a Waiters,
    id: String,
    /// Notified when the decision may have changed.
    pub notify: Arc<Notify>,
}

impl Waiters {
    /// Register interest in `decision_id`.
    pub fn register(&self, decision_id: &str) -> Waiter<'_> {
        let notify = {
            let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(decision_id.to_string()).or_default().clone()
        };
        Waiter { owner: self, id: decision_id.to_string(), notify }
    }

    /// Wake everyone waiting on any decision (they read theirs again).
    pub fn wake_all(&self) {
        let all: Vec<Arc<Notify>> = self.map.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        for n in all {
            n.notify_waiters();
        }
    }

    /// Wake everyone waiting on `decision_id`.
    pub fn wake(&self, decision_id: &str) {
        let n = self.map.lock().unwrap_or_else(|e| e.into_inner()).get(decision_id).cloned();
        if let Some(n) = n {
            n.notify_waiters();
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut m = self.owner.map.lock().unwrap_or_else(|e| e.into_inner());
        // The map holds one reference and this waiter another.
        if m.get(&self.id).is_some_and(|n| Arc::strong_count(n) <= 2) {
            m.remove(&self.id);
        }
    }
}
