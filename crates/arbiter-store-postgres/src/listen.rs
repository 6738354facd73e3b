//! The listener: one connection per replica that `LISTEN`s for decisions
//! made final (by any replica) and relays their ids. When the connection
//! drops it reconnects, and relays `*` (look again) once it is back, since
//! notifications sent meanwhile are lost; waiters also re-check on their own
//! every few seconds, so a dead listener slows releases but never loses one.

use crate::{DECISIONS_CHANNEL, connect};
use arbiter_store::Result;
use fallible_iterator::FallibleIterator;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;

/// What a relayed `*` means: every waiter should read its decision again.
pub const LOOK_AGAIN: &str = "*";

pub(crate) fn spawn(url: String, out: broadcast::Sender<String>, stop: Arc<AtomicBool>) -> Result<()> {
    std::thread::Builder::new()
        .name("arbiter-pg-listen".into())
        .spawn(move || {
            let mut backoff = Duration::from_millis(100);
            let mut first = true;
            while !stop.load(Ordering::Acquire) {
                match listen(&url, &out, &stop, &mut first) {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "the PostgreSQL notification listener lost its connection; reconnecting (waiters fall back to polling meanwhile)");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        })
        .map_err(|e| arbiter_store::StoreError::backend("cannot start the listener thread", e))?;
    Ok(())
}

/// Listen until `stop` (Ok) or the connection fails (Err).
fn listen(url: &str, out: &broadcast::Sender<String>, stop: &AtomicBool, first: &mut bool) -> Result<()> {
    let mut client = connect(url)?;
    client.batch_execute(&format!("LISTEN {DECISIONS_CHANNEL}")).map_err(crate::backend)?;
    if !std::mem::take(first) {
        let _ = out.send(LOOK_AGAIN.to_string());
    }
    while !stop.load(Ordering::Acquire) {
        let mut notifications = client.notifications();
        let mut it = notifications.timeout_iter(Duration::from_millis(500));
        while let Some(n) = it.next().map_err(crate::backend)? {
            let _ = out.send(n.payload().to_string());
        }
        drop(it);
        drop(notifications);
        if client.is_closed() {
            return Err(arbiter_store::StoreError::backend_msg("the listener connection closed"));
        }
        // an idle connection must still be alive: a cheap round trip finds out
        client.batch_execute("").map_err(crate::backend)?;
    }
    Ok(())
}
