//! Store integration tests: the conformance suite on SQLite, plus durability
//! and tamper detection that need a real file.

use arbiter_store::prelude::*;
use arbiter_store::{SqliteStore, conformance};

/// The conformance suite on SQLite, one test per check.
mod conformance_checks {
    use arbiter_store::SqliteStore;

    async fn fresh() -> Option<(SqliteStore, tempfile::TempDir)> {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("arbiter.db")).unwrap();
        Some((store, dir))
    }

    arbiter_store::conformance_tests!(fresh());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite_in_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("arbiter.db")).unwrap();
    conformance::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_bootstraps_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("arbiter.db")).unwrap();
    conformance::first_start(&store).await;
}

struct FileBackdoor(std::path::PathBuf);

#[async_trait::async_trait]
impl conformance::Backdoor for FileBackdoor {
    async fn execute(&self, sql: &str) {
        let raw = rusqlite::Connection::open(&self.0).unwrap();
        raw.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        raw.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_tamper_checks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arbiter.db");
    let store = SqliteStore::open(&path).unwrap();
    conformance::tampering(&store, &FileBackdoor(path)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_durable_wal_with_full_sync() {
    // A kill keeps the OS page cache, so only these settings make an
    // acknowledged write survive a power cut: WAL, and an fsync per commit.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("arbiter.db")).unwrap();
    assert_eq!(store.durability().await.unwrap(), ("wal".to_string(), 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_data_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arbiter.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        conformance::decisions_and_idempotency(&store).await;
        store.close();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert!(store.decision("d1").await.unwrap().is_some());
}

/// A store with decisions, cases and events, saved as a pristine file that
/// each tamper scenario copies and edits behind the store's back, as an
/// attacker with file access would.
async fn pristine(dir: &std::path::Path) -> std::path::PathBuf {
    let store = SqliteStore::open(dir.join("live.db")).unwrap();
    conformance::decisions_and_idempotency(&store).await;
    conformance::cases_and_events(&store).await;
    conformance::sla_sweep(&store).await;
    let report = conformance::assert_verified(&store).await;
    assert!(report.events >= 8 && report.decisions >= 3 && report.cases >= 2, "{report:?}");
    let path = dir.join("pristine.db");
    store.backup_to(&path).await.unwrap();
    path
}

/// Copy the pristine store, run `sql` on the copy, and verify it (with `anchor`).
async fn tampered(
    pristine: &std::path::Path,
    name: &str,
    sql: &str,
    anchor: Option<arbiter_store::ChainHead>,
) -> arbiter_store::AuditProblem {
    let path = pristine.with_file_name(format!("{name}.db"));
    std::fs::copy(pristine, &path).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(sql).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(raw.changes() > 0 || sql.contains("INSERT"), "{name}: the edit changed nothing");
    drop(raw);
    let store = SqliteStore::open(&path).unwrap();
    let report = store.verify_audit(anchor).await.unwrap();
    let summary = format!("{report:?}");
    report.problem.unwrap_or_else(|| panic!("{name}: tampering went unnoticed: {summary}"))
}

fn event_seq(p: &arbiter_store::AuditProblem) -> u64 {
    match p {
        arbiter_store::AuditProblem::Event { seq, .. } => *seq,
        other => panic!("expected an event problem, got {other:?}"),
    }
}

fn decision_id(p: &arbiter_store::AuditProblem) -> &str {
    match p {
        arbiter_store::AuditProblem::Decision { id, .. } => id,
        other => panic!("expected a decision problem, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_the_first_tampered_event_whatever_was_edited() {
    let dir = tempfile::tempdir().unwrap();
    let p = pristine(dir.path()).await;
    // the first answer on a case, somewhere in the middle of the chain
    let n: i64 = rusqlite::Connection::open(&p)
        .unwrap()
        .query_row("SELECT MIN(seq) FROM events WHERE kind = 'case.answered'", [], |r| r.get(0))
        .unwrap();
    let n = n as u64;
    assert!(n > 2);
    for (name, edit) in [
        ("data", "data = replace(data, 'checked it', 'did not check')"),
        ("kind", "kind = 'case.commented'"),
        ("actor", "actor = 'mallory'"),
        ("at", "at = at + 1"),
        ("case_id", "case_id = 'c-other'"),
    ] {
        let sql = format!("UPDATE events SET {edit} WHERE seq = {n}");
        assert_eq!(event_seq(&tampered(&p, name, &sql, None).await), n, "{name}");
    }
    // deleting an event in the middle leaves a gap
    let prob = tampered(&p, "delete", &format!("DELETE FROM events WHERE seq = {n}"), None).await;
    assert_eq!(event_seq(&prob), n + 1, "{prob:?}");
    // reordering two events breaks their links
    let sql = format!(
        "UPDATE events SET seq = -1 WHERE seq = {n}; UPDATE events SET seq = {n} WHERE seq = {n} + 1;
         UPDATE events SET seq = {n} + 1 WHERE seq = -1"
    );
    assert_eq!(event_seq(&tampered(&p, "reorder", &sql, None).await), n, "reorder");
    // inserting an event (linked to its predecessor) breaks the link of the one after it
    let sql = format!(
        "UPDATE events SET seq = seq + 1000 WHERE seq >= {n}; UPDATE events SET seq = seq - 999 WHERE seq >= 1000;
         INSERT INTO events (project, seq, kind, actor, at, data, prev_hash, hash)
           SELECT 'default', {n}, 'case.commented', 'mallory', at, '{{}}', hash, hash FROM events WHERE seq = {n} - 1"
    );
    assert_eq!(event_seq(&tampered(&p, "insert", &sql, None).await), n, "insert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_decision_rows_edited_inserted_or_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let p = pristine(dir.path()).await;
    // the forged verdict of the issue: a final deny turned into allow, in the body and the column
    let prob = tampered(
        &p,
        "verdict",
        "UPDATE decisions SET final_verdict = 'allow', body = replace(body, '\"verdict\":\"deny\"', '\"verdict\":\"allow\"')
         WHERE id = 'd-sla'",
        None,
    )
    .await;
    assert_eq!(decision_id(&prob), "d-sla", "{prob:?}");
    // the arguments edited
    let prob =
        tampered(&p, "args", "UPDATE decisions SET body = replace(body, 'web-17', 'dc-01') WHERE id = 'd2'", None)
            .await;
    assert_eq!(decision_id(&prob), "d2", "{prob:?}");
    // only an indexed column edited (what tuning and drift read)
    let prob = tampered(&p, "column", "UPDATE decisions SET confidence = 0.99 WHERE id = 'd2'", None).await;
    assert!(
        matches!(&prob, arbiter_store::AuditProblem::Decision { id, why } if id == "d2" && why.contains("confidence"))
    );
    // a row deleted
    let prob = tampered(&p, "deleted", "DELETE FROM decisions WHERE id = 'd2'", None).await;
    assert_eq!(decision_id(&prob), "d2", "{prob:?}");
    // a row inserted
    let prob = tampered(
        &p,
        "inserted",
        "INSERT INTO decisions (id, agent, request_digest, action_name, verdict, status, policy_hash, received_at, event_time, body)
         SELECT 'forged', agent, 'x', action_name, verdict, status, policy_hash, received_at, event_time,
                replace(body, '\"id\":\"d1\"', '\"id\":\"forged\"') FROM decisions WHERE id = 'd1'",
        None,
    )
    .await;
    assert_eq!(decision_id(&prob), "forged", "{prob:?}");
    // the row and the chain's record of it edited together: the chain event no longer verifies
    let prob = tampered(
        &p,
        "row_and_leaf",
        "UPDATE decisions SET body = replace(body, 'web-17', 'dc-01') WHERE id = 'd2';
         UPDATE events SET data = '{\"decisions\":[]}' WHERE kind = 'decisions.committed'",
        None,
    )
    .await;
    assert!(matches!(prob, arbiter_store::AuditProblem::Event { .. }), "{prob:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anchor_catches_the_newest_events_deleted_with_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let p = pristine(dir.path()).await;
    let store = SqliteStore::open(&p).unwrap();
    let head = store.chain_head().await.unwrap().unwrap();
    assert_eq!(store.verify_audit(Some(head.clone())).await.unwrap().problem, None);
    drop(store);
    // Dropping the last events and every row they cover leaves a valid plain chain...
    let last_case_event = "DELETE FROM events WHERE seq >= (SELECT MIN(seq) FROM events WHERE case_id = 'c-sla'); DELETE FROM cases WHERE id = 'c-sla';";
    let drop_rows = "DELETE FROM decisions WHERE id = 'd-sla';";
    let sql = format!("{last_case_event} {drop_rows}");
    let path = p.with_file_name("truncated.db");
    std::fs::copy(&p, &path).unwrap();
    rusqlite::Connection::open(&path).unwrap().execute_batch(&sql).unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.verify_audit(None).await.unwrap().problem, None, "a plain chain cannot see a truncation");
    // ...but not one that must extend the anchor taken before.
    let prob = store.verify_audit(Some(head.clone())).await.unwrap().problem.unwrap();
    assert!(matches!(prob, arbiter_store::AuditProblem::Anchor { .. }), "{prob:?}");
    // A rewritten event at the anchor's position is caught too.
    let forged = arbiter_store::ChainHead { seq: head.seq - 3, hash: "0".repeat(64) };
    let prob = store.verify_audit(Some(forged)).await.unwrap().problem.unwrap();
    assert!(matches!(prob, arbiter_store::AuditProblem::Anchor { .. }), "{prob:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_database_from_a_newer_arbiter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arbiter.db");
    drop(SqliteStore::open(&path).unwrap());
    rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let err = SqliteStore::open(&path).err().unwrap();
    assert!(err.to_string().contains("newer"), "{err}");
}

/// A fresh database at schema `version` (every migration up to it, as that build applied them).
fn schema_at(path: &std::path::Path, version: u32) -> rusqlite::Connection {
    const STEPS: &[&str] = &[
        include_str!("../../migrations/sqlite/0001_init.sql"),
        include_str!("../../migrations/sqlite/0002_review_workflow.sql"),
        include_str!("../../migrations/sqlite/0003_decision_sessions.sql"),
        include_str!("../../migrations/sqlite/0004_settings.sql"),
        include_str!("../../migrations/sqlite/0005_dashboard.sql"),
        include_str!("../../migrations/sqlite/0006_trust.sql"),
        include_str!("../../migrations/sqlite/0007_learning.sql"),
        include_str!("../../migrations/sqlite/0008_endings.sql"),
        include_str!("../../migrations/sqlite/0009_spans.sql"),
        include_str!("../../migrations/sqlite/0010_receipts.sql"),
        include_str!("../../migrations/sqlite/0011_leases.sql"),
        include_str!("../../migrations/sqlite/0012_drift_episodes.sql"),
        include_str!("../../migrations/sqlite/0013_span_senders.sql"),
    ];
    let c = rusqlite::Connection::open(path).unwrap();
    for sql in &STEPS[..version as usize] {
        c.execute_batch(sql).unwrap();
    }
    c.pragma_update(None, "user_version", version).unwrap();
    c
}

/// Schema 12 renames the drift alarm event: a webhook subscribed to
/// `drift.alarm` is moved to `drift.episode.started`, its other kinds kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drift_episode_upgrade_moves_webhooks_off_the_old_alarm_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arbiter.db");
    {
        // a schema 11 store with such a webhook
        let c = schema_at(&path, 11);
        c.execute(
            "INSERT INTO webhooks (id, url, events, format, secret, created_at, created_by) VALUES ('w1', 'https://example.test/hook', ?1, 'json', 's', 0, 'admin')",
            [r#"["case.opened","drift.alarm"]"#],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let hooks = store.webhooks().await.unwrap();
    let kinds: Vec<&str> = hooks[0].events.iter().map(String::as_str).collect();
    assert_eq!(kinds, ["case.opened", "drift.episode.started"]);
    assert!(store.drift_episodes(false, 10).await.unwrap().is_empty(), "the episodes table is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_is_a_consistent_openable_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("arbiter.db")).unwrap();
    conformance::decisions_and_idempotency(&store).await;
    conformance::cases_and_events(&store).await;
    let dest = dir.path().join("backup.db");
    store.backup_to(&dest).await.unwrap();
    assert!(store.backup_to(&dest).await.is_err(), "an existing file is never overwritten");
    let copy = SqliteStore::open(&dest).unwrap();
    assert!(copy.decision("d1").await.unwrap().is_some());
    conformance::assert_verified(&copy).await;
    assert_eq!(copy.keys().await.unwrap(), store.keys().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_a_case_row_edited_behind_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let p = pristine(dir.path()).await;
    let prob = tampered(
        &p,
        "case",
        "UPDATE cases SET body = replace(body, '\"approvals\":2', '\"approvals\":1') WHERE id = 'c2'",
        None,
    )
    .await;
    assert!(matches!(&prob, arbiter_store::AuditProblem::Case { id, .. } if id == "c2"), "{prob:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_a_lesson_edited_behind_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("live.db")).unwrap();
    conformance::decisions_and_idempotency(&store).await;
    conformance::claims_are_exclusive(&store).await;
    conformance::review_cases(&store).await;
    conformance::assert_verified(&store).await;
    let pristine = dir.path().join("pristine.db");
    store.backup_to(&pristine).await.unwrap();
    for (name, sql) in [
        ("lesson-body", "UPDATE lessons SET body = replace(body, 'Servers isolated', 'Nothing to see') WHERE 1"),
        ("lesson-deleted-event", "DELETE FROM events WHERE kind = 'lesson.created'"),
    ] {
        let prob = tampered(&pristine, name, sql, None).await;
        assert!(
            matches!(&prob, arbiter_store::AuditProblem::Lesson { .. } | arbiter_store::AuditProblem::Event { .. }),
            "{name}: {prob:?}"
        );
    }
    let prob = tampered(
        &pristine,
        "lesson-only",
        "UPDATE lessons SET body = replace(body, '\"publish\":false', '\"publish\":true')",
        None,
    )
    .await;
    assert!(matches!(&prob, arbiter_store::AuditProblem::Lesson { .. }), "{prob:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_closed_before_lessons_existed_gets_its_lesson_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.db");
    let store = SqliteStore::open(&path).unwrap();
    conformance::decisions_and_idempotency(&store).await;
    conformance::claims_are_exclusive(&store).await;
    conformance::review_cases(&store).await;
    let at = arbiter_core::Timestamp(99);
    assert!(matches!(store.create_missing_lesson("r-1", "eve", at).await, Err(arbiter_store::StoreError::Conflict(_))));
    assert!(matches!(
        store.create_missing_lesson("nope", "eve", at).await,
        Err(arbiter_store::StoreError::NotFound(_))
    ));
    // as if the review had closed before schema 7: no lesson row
    rusqlite::Connection::open(&path).unwrap().execute("DELETE FROM lessons", []).unwrap();
    let l = store.create_missing_lesson("r-1", "ann", at).await.unwrap();
    assert_eq!((l.review_id.as_str(), l.created_by.as_str()), ("r-1", "ann"));
    assert_eq!(l.summary.lines().next(), Some("resolved again"), "the closing remark of its last close");
    conformance::assert_verified(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_a_version_one_database_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arbiter.db");
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(include_str!("../../migrations/sqlite/0001_init.sql")).unwrap();
        raw.pragma_update(None, "user_version", 1).unwrap();
        let body = r#"{"id":"old","agent":"a","agent_key_id":"k","action":{"name":"close_alert","args":{"host":"ws-9"},"signals":{}},"trace_id":"t-old","context":{"session_id":"chat-1"},"verdict":"allow","status":"final","triggers":[],"explanation":"x","policy_hash":"h","received_at":"2026-01-01T00:00:00.000Z","event_time":"2026-01-01T00:00:00.000Z","eval_micros":1,"final":{"verdict":"allow","source":"policy","rationale":"x","decided_at":"2026-01-01T00:00:00.000Z"}}"#;
        raw.execute(
            "INSERT INTO decisions (id, agent, request_digest, action_name, verdict, status, final_verdict, policy_hash, trace_id, received_at, event_time, body)
             VALUES ('old', 'a', 'r', 'close_alert', 'allow', 'final', 'allow', 'h', 't-old', 1767225600000, 1767225600000, ?1)",
            [body],
        )
        .unwrap();
    }
    assert_eq!(SqliteStore::schema_version(&path).unwrap(), (1, 15));
    assert_eq!(SqliteStore::schema_version(&path).unwrap(), (1, 15), "checking changes nothing");
    // `arbiter migrate`: every migration reports its start and its end, the backfills their rows
    let mut seen = vec![];
    let report = SqliteStore::migrate(&path, &mut |p| seen.push(p)).unwrap();
    assert_eq!((report.from, report.to), (1, 15));
    let versions: std::collections::BTreeSet<u32> = seen.iter().map(|p| p.version).collect();
    assert_eq!(versions, (2..=15).collect());
    for v in [6, 7] {
        let last = seen.iter().rfind(|p| p.version == v).unwrap();
        assert_eq!((last.done, last.total), (1, 1), "migration {v} went through the one old decision");
    }
    assert_eq!(SqliteStore::schema_version(&path).unwrap(), (15, 15));
    let again = SqliteStore::migrate(&path, &mut |_| panic!("nothing left to migrate")).unwrap();
    assert_eq!((again.from, again.to), (15, 15));
    let store = SqliteStore::open(&path).unwrap();
    let v: u32 =
        rusqlite::Connection::open(&path).unwrap().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v, 15, "every migration applied");
    // the endings roll-up counts the old decision under how it ended
    let d = store.dashboard(arbiter_core::Timestamp(0)).await.unwrap();
    assert_eq!(d.endings.len(), 1);
    assert_eq!((d.endings[0].decisions, d.endings[0].verdict), (1, Some(arbiter_core::Verdict::Allow)));
    // the decision written before decisions were chained is committed by the upgrade
    let report = conformance::assert_verified(&store).await;
    assert_eq!(report.decisions, 1);
    // the new session column was filled from the stored bodies
    let chain = store.decision_chain(&[], &["old".into()], 10).await.unwrap();
    assert_eq!(chain.len(), 1);
    // the learning columns were filled by the same rules as new rows (the verify above checks them)
    let (n, _) = store.subject_history("host:ws-9", arbiter_core::Timestamp(i64::MAX), 10).await.unwrap();
    assert_eq!(n, 1);
    let n: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM decisions WHERE session_id = 'chat-1'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    conformance::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_writes_is_a_consistent_snapshot() {
    use arbiter_store::NewDecision;
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(dir.path().join("arbiter.db")).unwrap());
    conformance::decisions_and_idempotency(store.as_ref()).await;
    // writers keep committing decisions (each batch also appends a chain event) while backups run
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut d = conformance::sample_decision(&format!("bk-{n}"));
                d.received_at = arbiter_core::Timestamp(10_000 + n as i64);
                let nd =
                    NewDecision { decision: d, request_digest: format!("bk-{n}"), case: None, open_case_cap: None };
                store.insert_decision(nd).await.unwrap();
                n += 1;
            }
            n
        })
    };
    let mut copies = Vec::new();
    for i in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let dest = dir.path().join(format!("backup-{i}.db"));
        store.backup_to(&dest).await.unwrap();
        copies.push(dest);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written > 10, "the writers were busy during the backups ({written} decisions)");
    let mut seen = Vec::new();
    for copy in copies {
        let c = SqliteStore::open(&copy).unwrap();
        // a consistent snapshot: the chain and every decision row in it verify
        let report = conformance::assert_verified(&c).await;
        seen.push(report.decisions);
    }
    assert!(seen.windows(2).all(|w| w[0] <= w[1]) && seen[0] < seen[2], "later backups hold more: {seen:?}");
}

/// The repro of the trust review: `arbiter serve` and `arbiter keys create`
/// opening one fresh file at once failed with "table policy_versions already
/// exists" (the version was read outside the migration's transaction). Each
/// step now runs under the write lock and reads the version inside it.
#[test]
fn two_processes_opening_one_fresh_file_migrate_once() {
    for round in 0..12 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race.db");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(3));
        let openers: Vec<_> = (0..3)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    SqliteStore::open(&path).map(|s| s.close())
                })
            })
            .collect();
        for o in openers {
            o.join().unwrap().unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        }
        assert_eq!(SqliteStore::schema_version(&path).unwrap(), (15, 15));
    }
}

/// A store written by the last schema-12 build (`tests/fixtures/make-fixtures.sh`
/// says how it was made) upgrades in place: every migration since applies,
/// the chain still verifies, the anchor taken before the upgrade still
/// holds, and every decision and case reads back as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_12_store_upgrades_with_its_chain_and_anchor_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arbiter.db");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema-12.db"), &path).unwrap();
    let anchor: arbiter_store::ChainHead =
        include_str!("../fixtures/schema-12.anchor").trim().parse().expect("the fixture's anchor is SEQ:HASH");
    let (from, latest) = SqliteStore::schema_version(&path).unwrap();
    assert_eq!(from, 12, "the fixture is a schema-12 store");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(SqliteStore::schema_version(&path).unwrap(), (latest, latest), "opening it upgraded it");
    let report = store.verify_audit(Some(anchor.clone())).await.unwrap();
    assert_eq!(report.problem, None, "{report:?}");
    assert!(report.events >= anchor.seq, "the chain extends the anchor: {report:?}");
    assert_eq!(report.decisions, 3, "a close, an approved and a refused isolation (the replay stored nothing)");
    let decided = store.find_cases(arbiter_store::CaseQuery { limit: 10, ..Default::default() }).await.unwrap().cases;
    assert_eq!(decided.len(), 2);
    for c in &decided {
        let d = store.decision(c.decision_id.as_deref().unwrap()).await.unwrap().unwrap();
        let fin = d.final_verdict.expect("people decided it");
        assert_eq!(fin.decided_by, ["alice"]);
    }
    let dash = store.dashboard(arbiter_core::Timestamp(0)).await.unwrap();
    assert_eq!(dash.endings.iter().map(|e| e.decisions).sum::<u64>(), 3, "{:?}", dash.endings);
    // a span stored before spans had senders is kept, and belongs to no agent's run
    let trace = "5b8efff798038103d269b633813fc60c";
    let spans = store.trace_spans(trace, None, 10).await.unwrap();
    assert_eq!((spans.len(), spans[0].sender.as_deref()), (1, None));
    assert!(store.trace_spans(trace, Some("soc-triage-agent"), 10).await.unwrap().is_empty());
}
