//! Store integration tests: the conformance suite on SQLite, plus durability
//! and tamper detection that need a real file.

use arbiter_store::{SqliteStore, Store, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("arbiter.db")).unwrap();
    conformance::run_all(&store).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_the_first_tampered_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arbiter.db");
    let store = SqliteStore::open(&path).unwrap();
    conformance::cases_and_events(&store).await;
    assert_eq!(store.verify_events().await.unwrap(), None);
    // Edit a row behind the store's back, as an attacker with file access would.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("UPDATE events SET data = replace(data, 'bob checked it', 'nobody checked') WHERE seq = 3", [])
        .unwrap();
    let (seq, why) = store.verify_events().await.unwrap().expect("tampering must be detected");
    assert_eq!(seq, 3, "{why}");
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
    assert_eq!(copy.verify_events().await.unwrap(), None);
    assert_eq!(copy.keys().await.unwrap(), store.keys().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_a_case_row_edited_behind_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arbiter.db");
    let store = SqliteStore::open(&path).unwrap();
    conformance::cases_and_events(&store).await;
    assert_eq!(store.verify_projections().await.unwrap(), None);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let n = raw
        .execute("UPDATE cases SET body = replace(body, '\"approvals\":2', '\"approvals\":1') WHERE id = 'c2'", [])
        .unwrap();
    assert_eq!(n, 1);
    let (id, why) = store.verify_projections().await.unwrap().expect("an edited projection must be detected");
    assert_eq!(id, "c2", "{why}");
    assert_eq!(store.verify_events().await.unwrap(), None, "the chain itself is intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_a_version_one_database_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arbiter.db");
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(include_str!("../../migrations/sqlite/0001_init.sql")).unwrap();
        raw.pragma_update(None, "user_version", 1).unwrap();
        let body = r#"{"id":"old","agent":"a","agent_key_id":"k","action":{"name":"close_alert","args":{},"signals":{}},"trace_id":"t-old","context":{"session_id":"chat-1"},"verdict":"allow","status":"final","triggers":[],"explanation":"x","policy_hash":"h","received_at":"2026-01-01T00:00:00.000Z","event_time":"2026-01-01T00:00:00.000Z","eval_micros":1}"#;
        raw.execute(
            "INSERT INTO decisions (id, agent, request_digest, action_name, verdict, status, policy_hash, trace_id, received_at, event_time, body)
             VALUES ('old', 'a', 'r', 'close_alert', 'allow', 'final', 'h', 't-old', 0, 0, ?1)",
            [body],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let v: u32 =
        rusqlite::Connection::open(&path).unwrap().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v, 5, "every migration applied");
    // the new session column was filled from the stored bodies
    let chain = store.decision_chain(&[], &["old".into()], 10).await.unwrap();
    assert_eq!(chain.len(), 1);
    let n: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM decisions WHERE session_id = 'chat-1'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    conformance::run_all(&store).await;
}
