#!/usr/bin/env python3
"""Where a PostgreSQL replica's write batches spend their time on the server
side: sums the `duration:` lines PostgreSQL logs with
`log_min_duration_statement = 0` for one database, per statement kind, for the
connection that inserted the decisions (the writer), per batch.

    psql -c "CREATE DATABASE prof" -c "ALTER DATABASE prof SET log_min_duration_statement = 0"
    ./target/release/arbiter bench decide --duration 5s --db postgres://postgres@127.0.0.1:5432/prof
    bench/decide/pg_statements.py /var/log/postgresql/postgresql-15-main.log prof

(Logging every statement slows the run down a little; use the shares, not the totals.)
"""
import collections
import re
import sys

log, db = sys.argv[1], sys.argv[2]
records, cur = [], None
for line in open(log, errors="replace"):
    if re.match(r"^\d{4}-\d\d-\d\d ", line):
        if cur:
            records.append(cur)
        cur = line.rstrip("\n")
    elif cur is not None:
        cur += " " + line.strip()
if cur:
    records.append(cur)
pat = re.compile(r"\[(\d+)\] \S+@" + re.escape(db) + r" LOG:  duration: ([\d.]+) ms  (parse|bind|execute|statement)[^:]*: (.*)")
rows, inserts = [], collections.Counter()
for r in records:
    m = pat.search(r)
    if m:
        pid, ms, phase, sql = m.group(1), float(m.group(2)), m.group(3), " ".join(m.group(4).split())
        rows.append((pid, ms, phase, sql))
        if "INSERT INTO decisions" in sql:
            inserts[pid] += 1
if not inserts:
    sys.exit(f"no decision inserts logged for database {db}")
writer = inserts.most_common(1)[0][0]
KINDS = [
    ("WITH input AS", "bulk insert: decisions and hourly roll-ups"),
    ("INSERT INTO cases", "insert cases"),
    ("INSERT INTO events", "insert events (case.opened, decisions.committed)"),
    ("INSERT INTO webhook_deliveries", "queue webhook deliveries"),
    ("FROM chain_head FOR UPDATE", "lock the chain head"),
    ("UPDATE chain_head", "move the chain head"),
    ("FROM webhooks WHERE active", "read the active webhooks"),
    ("START", "BEGIN"),
    ("COMMIT", "COMMIT"),
]
per = collections.Counter()
for pid, ms, phase, sql in rows:
    if pid != writer:
        continue
    name = next((n for k, n in KINDS if k in sql), None)
    if name is not None:  # the rest are start-up statements (migrations, bootstrap)
        per[name] += ms
# one execution of the lock per batch (its parse is once per connection)
batches = sum(1 for pid, ms, phase, sql in rows if pid == writer and phase == "execute" and "FROM chain_head FOR UPDATE" in sql) or 1
print(f"writer connection {writer}: {batches} batches")
for name, ms in per.most_common():
    print(f"  {name:50s} {ms / batches:6.3f} ms per batch")
print(f"  {'all of the above':50s} {sum(per.values()) / batches:6.3f} ms per batch")
