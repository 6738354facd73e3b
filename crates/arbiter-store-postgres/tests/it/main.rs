//! The PostgreSQL store against the conformance suite every backend passes,
//! plus what only several writers on one database can show. Each test gets a
//! fresh database on `ARBITER_TEST_POSTGRES_URL` (skipped without it, unless
//! `ARBITER_REQUIRE_POSTGRES=1`).

use arbiter_store::conformance;
use arbiter_store::prelude::*;
use arbiter_store_postgres::{PostgresStore, testing};

/// The conformance suite on PostgreSQL, one test per check, each in a database
/// of its own (dropped with `FORCE` when the test ends, cutting the store's connections).
mod conformance_checks {
    use arbiter_store_postgres::{PostgresStore, testing};

    async fn fresh() -> Option<(PostgresStore, testing::TestDatabase)> {
        let db = testing::fresh("conformance_check")?;
        let store = PostgresStore::connect(&db.url).await.unwrap();
        Some((store, db))
    }

    arbiter_store::conformance_tests!(fresh());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() {
    let Some(db) = testing::fresh("conformance") else { return };
    let store = PostgresStore::connect(&db.url).await.unwrap();
    conformance::run_all(&store).await;
    store.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_bootstraps_once() {
    let Some(db) = testing::fresh("first_start") else { return };
    let store = PostgresStore::connect(&db.url).await.unwrap();
    conformance::first_start(&store).await;
    store.close();
}

struct Backdoor<'a>(&'a testing::TestDatabase);

#[async_trait::async_trait]
impl conformance::Backdoor for Backdoor<'_> {
    async fn execute(&self, sql: &str) {
        self.0.execute(sql);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_tamper_checks() {
    let Some(db) = testing::fresh("tampering") else { return };
    let store = PostgresStore::connect(&db.url).await.unwrap();
    conformance::tampering(&store, &Backdoor(&db)).await;
    store.close();
}

/// A batch in which one job fails runs again with a savepoint per job: the
/// failing job fails alone, and the decisions in the same batch (inserted one
/// by one then) are all stored, idempotency included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_fails_alone_and_its_batch_commits() {
    use arbiter_store::{Inserted, NewDecision, Store, StoreError};
    let Some(db) = testing::fresh("savepoints") else { return };
    let store = std::sync::Arc::new(PostgresStore::connect(&db.url).await.unwrap());
    for round in 0..5 {
        // all queued at once, so they share batches
        let inserts: Vec<_> = (0..40)
            .map(|i| {
                let mut d = conformance::sample_decision(&format!("sp-{round}-{i}"));
                d.idempotency_key = Some(format!("k-{round}-{}", i % 20));
                let new = NewDecision {
                    decision: d,
                    request_digest: format!("r-{}", i % 20),
                    case: None,
                    open_case_cap: None,
                };
                let store = store.clone();
                tokio::spawn(async move { store.insert_decision(new).await })
            })
            .collect();
        let failing = {
            let store = store.clone();
            tokio::spawn(async move {
                store.update_case("no-such-case", arbiter_core::CaseCommand::Sweep, arbiter_core::Timestamp(1)).await
            })
        };
        let mut results = Vec::new();
        for h in inserts {
            results.push(h.await.unwrap());
        }
        let failed = failing.await.unwrap();
        assert!(matches!(failed, Err(StoreError::NotFound(_))), "{failed:?}");
        let created = results.iter().filter(|r| matches!(r, Ok(Inserted::Created(_)))).count();
        let existing = results.iter().filter(|r| matches!(r, Ok(Inserted::Existing(_)))).count();
        assert_eq!((created, existing), (20, 20), "{results:?}");
    }
    assert!(store.write_stats().retried_batches > 0, "{:?}: no batch ran with savepoints", store.write_stats());
    conformance::assert_verified(&*store).await;
    store.close();
}

/// After a connection reset (PgBouncer restarting, a failover) each dead
/// pooled connection used to fail one request: reads, and writes whose batch
/// had not begun, now run again on a fresh connection. A database that does
/// not answer at all is `Unavailable` (503 to clients), not a bug (500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_connections_fail_no_request_and_an_outage_is_unavailable() {
    use arbiter_store::{NewDecision, StoreError};
    let Some(db) = testing::fresh("resets") else { return };
    let store = PostgresStore::connect(&db.url).await.unwrap();
    let new = |id: &str| NewDecision {
        decision: conformance::sample_decision(id),
        request_digest: id.into(),
        case: None,
        open_case_cap: None,
    };
    store.insert_decision(new("before")).await.unwrap();
    for _ in 0..8 {
        assert!(store.decision("before").await.unwrap().is_some());
    }
    for round in 0..3 {
        // every connection of the store is cut from the server's side
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
        for i in 0..8 {
            let read = store.decision("before").await;
            assert!(matches!(read, Ok(Some(_))), "round {round}, read {i}: {read:?}");
        }
        let id = format!("after-{round}");
        store.insert_decision(new(&id)).await.unwrap_or_else(|e| panic!("round {round}: the write failed: {e:?}"));
        assert!(store.decision(&id).await.unwrap().is_some());
    }
    store.close();
    // nothing listens on port 1
    match PostgresStore::connect("postgres://postgres@127.0.0.1:1/arbiter").await {
        Err(StoreError::Unavailable(why)) => assert!(why.contains("cannot connect"), "{why}"),
        other => panic!("expected Unavailable, got {:?}", other.map(|_| ())),
    }
}

/// A database written by an older build (the story of
/// `crates/arbiter-store/tests/fixtures/make-fixtures.sh`, dumped with
/// `pg_dump`) upgrades in place into the default project: the chain still
/// verifies against the anchor taken before the upgrade, every decision and
/// case reads back, spans keep their senders (one from before spans had
/// senders belongs to no agent's run), and a new project starts its own
/// chain beside it.
async fn upgrades_with_its_chain_and_anchor_intact(name: &str, dump: &str, anchor: &str, schema: u32) {
    let Some(db) = testing::fresh(name) else { return };
    db.execute(dump);
    let anchor: arbiter_store::ChainHead = anchor.trim().parse().expect("the fixture's anchor is SEQ:HASH");
    let (from, latest) = arbiter_store_postgres::schema_versions(&db.url).unwrap();
    assert_eq!(from, schema, "the fixture is a schema-{schema} database");
    let store = PostgresStore::connect(&db.url).await.unwrap();
    assert_eq!(arbiter_store_postgres::schema_versions(&db.url).unwrap(), (latest, latest), "connecting upgraded it");
    assert_eq!(store.project().as_str(), "default");
    let report = store.verify_audit(Some(anchor.clone())).await.unwrap();
    assert_eq!(report.problem, None, "{report:?}");
    assert!(report.events >= anchor.seq, "the chain extends the anchor: {report:?}");
    assert_eq!(report.decisions, 3, "a close, an approved and a refused isolation (the replay stored nothing)");
    let cases = store.find_cases(arbiter_store::CaseQuery { limit: 10, ..Default::default() }).await.unwrap().cases;
    assert_eq!(cases.len(), 2);
    for c in &cases {
        let d = store.decision(c.decision_id.as_deref().unwrap()).await.unwrap().unwrap();
        assert_eq!(d.final_verdict.expect("people decided it").decided_by, ["alice"]);
    }
    let trace = "5b8efff798038103d269b633813fc60c";
    let spans = store.trace_spans(trace, None, 10).await.unwrap();
    if schema < 3 {
        // spans had no senders before schema 3
        assert_eq!((spans.len(), spans[0].sender.as_deref()), (1, None));
        assert!(store.trace_spans(trace, Some("soc-triage-agent"), 10).await.unwrap().is_empty());
    } else {
        assert_eq!(store.trace_spans(trace, spans[0].sender.as_deref(), 10).await.unwrap().len(), 1);
    }
    // the old chain goes on in the default project; a new project has its own
    store.record_event("note", "after", arbiter_core::Timestamp(1), serde_json::json!({})).await.unwrap();
    let team = conformance::another_project(&store).await;
    team.record_event("note", "team", arbiter_core::Timestamp(1), serde_json::json!({})).await.unwrap();
    assert_eq!(store.verify_audit(Some(anchor)).await.unwrap().problem, None);
    conformance::assert_verified(&*team).await;
    assert!(team.keys().await.unwrap().is_empty() && !store.keys().await.unwrap().is_empty());
    store.close();
}

/// The last schema-2 build's database (the commit before 6ef35c0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_2_database_upgrades_with_its_chain_and_anchor_intact() {
    let (dump, anchor) = (include_str!("../fixtures/schema-2.sql"), include_str!("../fixtures/schema-2.anchor"));
    upgrades_with_its_chain_and_anchor_intact("schema_2_upgrade", dump, anchor, 2).await;
}

/// The last database before projects (schema 3, the build of 3b86de2): it
/// becomes the default project with its chain and its anchor intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_3_database_upgrades_into_the_default_project() {
    let (dump, anchor) = (include_str!("../fixtures/schema-3.sql"), include_str!("../fixtures/schema-3.anchor"));
    upgrades_with_its_chain_and_anchor_intact("schema_3_upgrade", dump, anchor, 3).await;
}

/// Commits of different projects do not wait for each other's chain lock:
/// while a transaction holds the default project's chain head (as a long
/// batch of another replica would), a replica's write in another project
/// commits, and a write in the default project waits until the lock is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_commit_without_waiting_for_each_others_chain_lock() {
    use std::time::Duration;
    let Some(db) = testing::fresh("project_locks") else { return };
    let one = PostgresStore::connect(&db.url).await.unwrap();
    let two = PostgresStore::connect(&db.url).await.unwrap();
    let team = conformance::another_project(&two).await;
    one.record_event("note", "one", arbiter_core::Timestamp(1), serde_json::json!({})).await.unwrap();
    // another session holds the default project's chain head
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let url = db.url.clone();
    let holder = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut tx = c.transaction().unwrap();
        tx.query("SELECT seq FROM chain_head WHERE project = 'default' FOR UPDATE", &[]).unwrap();
        held_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        tx.commit().unwrap();
    });
    held_rx.recv().unwrap();
    let at = arbiter_core::Timestamp(2);
    // replica one's write in the default project waits for the lock...
    let waiting = tokio::spawn(async move {
        one.record_event("note", "one", at, serde_json::json!({})).await.unwrap();
        one
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the default project's write waits for its chain head");
    // ...while replica two's write in another project commits at once
    let other =
        tokio::time::timeout(Duration::from_secs(5), team.record_event("note", "two", at, serde_json::json!({})))
            .await
            .expect("a write of another project does not wait for the default project's lock")
            .unwrap();
    assert_eq!(other.seq, 1, "the first event of the team's own chain");
    assert!(!waiting.is_finished());
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    let one = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
    for s in [&one as &dyn Store, &*team] {
        conformance::assert_verified(s).await;
    }
    assert_eq!(one.chain_head().await.unwrap().unwrap().seq, 2);
    one.close();
    two.close();
}
