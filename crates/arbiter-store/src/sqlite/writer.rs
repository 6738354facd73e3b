//! The writer thread: group commit. Every write job runs in the next batch, inside its own savepoint, and the batch commits once (one fsync for many requests); the decisions a batch wrote are committed to the audit chain in the same transaction.

use super::*;

pub(super) const MAX_BATCH: usize = 1024;

pub(super) type Reply = Box<dyn FnOnce(Result<()>) + Send>;

/// A write job: `Ok` keeps what it wrote, `Err` rolls it back. Either way its
/// reply waits for the batch's commit, so a caller told of a failure reads a
/// store where the batch's other writes are already visible (a withdrawal
/// that lost to an approval reads the approval).
pub(super) type Job = Box<dyn FnOnce(&Connection, &mut ProjectChains) -> std::result::Result<Reply, Reply> + Send>;

pub(super) fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let tx = match conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(error = %e, "cannot begin a write transaction");
                // Dropping the jobs drops their reply channels: callers see `Closed`.
                continue;
            }
        };
        let mut replies = Vec::with_capacity(batch.len());
        let mut chains = ProjectChains::default();
        run_batch(&tx, batch, &mut replies, &mut chains);
        // The decisions this batch wrote are committed to their projects'
        // audit chains in the same transaction: one event per project.
        let wrote_decisions = !chains.is_empty();
        let committed = chains.take().into_iter().try_for_each(|(project, data, at)| {
            append_event(&tx, &project, About::NOTHING, DECISIONS_COMMITTED, "system", at, data).map(|_| ())
        });
        let outcome = match committed {
            Ok(()) if wrote_decisions => fail_point("decision_commit").and_then(|()| tx.commit().map_err(backend)),
            Ok(()) => tx.commit().map_err(backend),
            Err(e) => Err(e),
        };
        for reply in replies {
            reply(outcome.clone());
        }
    }
}

pub(super) use crate::rules::fail_point;

pub(super) fn run_batch(tx: &Transaction<'_>, batch: Vec<Job>, replies: &mut Vec<Reply>, chains: &mut ProjectChains) {
    for job in batch {
        // A savepoint per job: a job that fails rolls back alone, and the rest
        // of the batch still commits.
        if tx.execute_batch("SAVEPOINT job").is_err() {
            continue;
        }
        chains.begin_job();
        match job(tx, chains) {
            Ok(reply) => {
                let _ = tx.execute_batch("RELEASE job");
                replies.push(reply);
            }
            Err(reply) => {
                chains.rollback_job();
                let _ = tx.execute_batch("ROLLBACK TO job; RELEASE job");
                replies.push(reply);
            }
        }
    }
}
