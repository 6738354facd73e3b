#!/usr/bin/env bash
# decisions/s of `arbiter bench decide` on SQLite, on PostgreSQL with one
# replica and with three, interleaved round by round so that all three see the
# same machine; each PostgreSQL run gets a fresh database (dropped after).
#
#   bench/decide/replicas.sh [ROUNDS] [POSTGRES_ADMIN_URL]
#
# Needs a release build (`cargo build --release -p arbiter-cli`) and a
# PostgreSQL where the user may create databases (default: the local one,
# postgres@127.0.0.1:5432). Prints one JSON line per run, then the medians.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-3}"
admin="${2:-postgres://postgres@127.0.0.1:5432/postgres}"
bin=./target/release/arbiter
[ -x "$bin" ] || { echo "build first: cargo build --release -p arbiter-cli" >&2; exit 1; }
base="${admin%/*}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq 1 "$rounds"); do
  for setup in sqlite pg1 pg3; do
    case "$setup" in
      sqlite) line=$("$bin" bench decide --concurrency 64 --duration 10s --json) ;;
      pg*)
        n="${setup#pg}"
        db="arbiter_bench_${setup}_$$_${r}"
        psql "$admin" -qc "CREATE DATABASE ${db}"
        line=$("$bin" bench decide --concurrency 64 --duration 10s --json --db "${base}/${db}" --replicas "$n")
        psql "$admin" -qc "DROP DATABASE ${db} WITH (FORCE)"
        ;;
    esac
    echo "{\"setup\": \"$setup\", \"round\": $r, \"result\": $line}" | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
for setup in ["sqlite", "pg1", "pg3"]:
    rs = sorted((r["result"] for r in runs if r["setup"] == setup), key=lambda x: x["decisions_per_sec"])
    med = rs[len(rs) // 2]
    rates = " / ".join(f'{x["decisions_per_sec"]:,.0f}' for x in rs)
    lock = med.get("chain_lock") or {}
    extra = ""
    if lock:
        extra = (f'; chain lock per batch: {lock["jobs_per_batch"]:.1f} writes, '
                 f'waited {lock["wait_ms_per_batch"]:.2f} ms, held {lock["held_ms_per_batch"]:.2f} ms')
    print(f'{setup}: {rates} decisions/s (median run: p50 {med["p50_ms"]:.1f} ms, p99 {med["p99_ms"]:.1f} ms{extra})')
PY
