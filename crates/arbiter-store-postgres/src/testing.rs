//! For tests: a fresh, empty database per test on the server named by
//! `ARBITER_TEST_POSTGRES_URL`, dropped afterwards. With
//! `ARBITER_REQUIRE_POSTGRES=1` a missing variable fails the test instead of skipping it.

use crate::connect;

/// A database created for one test; dropped (with its connections) when this is.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    /// Its URL.
    pub url: String,
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let scheme = url.find("://").map_or(0, |i| i + 3);
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let host_end = base[scheme..].find('/').map_or(base.len(), |i| scheme + i);
    format!("{}/{name}{query}", &base[..host_end])
}

/// A fresh database, or `None` (after saying why) when no PostgreSQL is configured and none is required.
pub fn fresh(test: &str) -> Option<TestDatabase> {
    let Ok(admin_url) = std::env::var("ARBITER_TEST_POSTGRES_URL") else {
        if std::env::var("ARBITER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            panic!("ARBITER_REQUIRE_POSTGRES=1 but ARBITER_TEST_POSTGRES_URL is not set");
        }
        // straight to stderr, past the test harness's capture: a skip shows in `cargo test`'s output
        let mut err = std::io::stderr().lock();
        let _ = std::io::Write::write_fmt(
            &mut err,
            format_args!("\nSKIPPED {test}: set ARBITER_TEST_POSTGRES_URL=postgres://user@host/db to run it\n"),
        );
        return None;
    };
    let suffix: String = format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
    );
    let clean: String =
        test.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).take(30).collect();
    let name = format!("arbiter_t_{clean}_{suffix}");
    let name: String = name.chars().take(63).collect();
    let admin = admin_url.clone();
    let n = name.clone();
    std::thread::spawn(move || {
        let mut c = connect(&admin).unwrap_or_else(|e| panic!("ARBITER_TEST_POSTGRES_URL: {e}"));
        c.batch_execute(&format!("CREATE DATABASE \"{n}\""))
            .unwrap_or_else(|e| panic!("cannot create a test database: {e}"));
    })
    .join()
    .expect("creating the test database");
    let url = with_database(&admin_url, &name);
    Some(TestDatabase { admin_url, name, url })
}

impl TestDatabase {
    /// Run `sql` on the database on a connection of its own, behind the
    /// store's back (as an attacker with database access would).
    pub fn execute(&self, sql: &str) {
        let (url, sql) = (self.url.clone(), sql.to_string());
        std::thread::spawn(move || {
            let mut c = connect(&url).unwrap_or_else(|e| panic!("{e}"));
            c.batch_execute(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        })
        .join()
        .expect("running SQL on the test database");
    }

    /// Drop the database now, cutting its connections (what a lost database looks like to a replica).
    pub fn drop_now(&self) {
        self.drop_database();
    }

    fn drop_database(&self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(mut c) = connect(&admin) {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
            }
        })
        .join();
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.drop_database();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_names_are_replaced() {
        use super::with_database as w;
        assert_eq!(w("postgres://postgres@127.0.0.1:5432/x", "y"), "postgres://postgres@127.0.0.1:5432/y");
        assert_eq!(w("postgres://u:p@h/x?sslmode=disable", "y"), "postgres://u:p@h/y?sslmode=disable");
        assert_eq!(w("postgres://u@h", "y"), "postgres://u@h/y");
    }
}
