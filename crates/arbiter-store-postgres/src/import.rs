//! `arbiter migrate --from ./arbiter.db --to postgres://...`: copy a SQLite store into an empty PostgreSQL database.
