//! The PostgreSQL store against the conformance suite every backend passes,
//! plus what only several writers on one database can show. Each test gets a
//! fresh database on `ARBITER_TEST_POSTGRES_URL` (skipped without it, unless
//! `ARBITER_REQUIRE_POSTGRES=1`).

use arbiter_store::conformance;
use arbiter_store_postgres::{PostgresStore, testing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() {
    let Some(db) = testing::fresh("conformance") else { return };
    let store = PostgresStore::connect(&db.url).await.unwrap();
    conformance::run_all(&store).await;
    store.close();
}
