#!/usr/bin/env bash
# decisions/s of `arbiter bench decide` on SQLite, on PostgreSQL with one
# replica and with three, interleaved round by round so that all of them see
# the same machine; each PostgreSQL run gets a fresh database (dropped after).
#
#   bench/decide/replicas.sh [ROUNDS] [POSTGRES_ADMIN_URL]
#   SETUPS="pg3 pg3p4" bench/decide/replicas.sh 3    # 3 replicas: one project vs four
#
# SETUPS (default "sqlite pg1 pg3") names the setups: sqlite, pgN (N replicas,
# one project), pgNpM (N replicas, the load spread over M projects, every
# replica getting every project's requests) and pgNpMa (the same, each
# project's requests sent to one replica). ARBITER_PG_WRITERS in the
# environment sets the servers' writers per replica (default 4).
#
# Needs a release build (`cargo build --release -p arbiter-cli`) and a
# PostgreSQL where the user may create databases (default: the local one,
# postgres@127.0.0.1:5432). Prints one JSON line per run, then the medians.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-3}"
admin="${2:-postgres://postgres@127.0.0.1:5432/postgres}"
setups="${SETUPS:-sqlite pg1 pg3}"
bin=./target/release/arbiter
[ -x "$bin" ] || { echo "build first: cargo build --release -p arbiter-cli" >&2; exit 1; }
base="${admin%/*}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# CPU seconds used by a run: the arbiter processes (the load generator and the
# servers it starts, all its children) and PostgreSQL (the postmaster's own and
# its reaped backends'), so the figures say where the two cores went.
pg_pid=$(pgrep -o -x postgres || true)
pg_cpu() {
  [ -n "$pg_pid" ] || { echo 0; return; }
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15 + $16 + $17) / hz}' "/proc/$pg_pid/stat"
}
timed() {
  local before after line
  before=$(pg_cpu)
  line=$(python3 -c '
import json, resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=True)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
res = json.loads(r.stdout)
res["arbiter_cpu_s"] = round(u.ru_utime + u.ru_stime, 2)
print(json.dumps(res))' "$@")
  after=$(pg_cpu)
  python3 -c 'import json, sys; r = json.loads(sys.argv[1]); r["postgres_cpu_s"] = round(float(sys.argv[3]) - float(sys.argv[2]), 2); print(json.dumps(r))' "$line" "$before" "$after"
}
for r in $(seq 1 "$rounds"); do
  for setup in $setups; do
    case "$setup" in
      sqlite) line=$(timed "$bin" bench decide --concurrency 64 --duration 10s --json) ;;
      pg*)
        spec="${setup#pg}"
        affinity=()
        case "$spec" in *a) affinity=(--affinity); spec="${spec%a}" ;; esac
        n="${spec%%p*}"
        projects=1
        [ "$spec" != "$n" ] && projects="${spec#*p}"
        db="arbiter_bench_${setup}_$$_${r}"
        psql "$admin" -qc "CREATE DATABASE ${db}"
        line=$(timed "$bin" bench decide --concurrency 64 --duration 10s --json --db "${base}/${db}" --replicas "$n" --projects "$projects" "${affinity[@]}")
        psql "$admin" -qc "DROP DATABASE ${db} WITH (FORCE)"
        ;;
    esac
    echo "{\"setup\": \"$setup\", \"round\": $r, \"result\": $line}" | tee -a "$out"
  done
done
python3 - "$out" $setups <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
for setup in sys.argv[2:]:
    rs = sorted((r["result"] for r in runs if r["setup"] == setup), key=lambda x: x["decisions_per_sec"])
    med = rs[len(rs) // 2]
    rates = " / ".join(f'{x["decisions_per_sec"]:,.0f}' for x in rs)
    lock = med.get("chain_lock") or {}
    extra = ""
    if lock:
        extra = (f'; chain lock per batch: {lock["jobs_per_batch"]:.1f} writes, '
                 f'waited {lock["wait_ms_per_batch"]:.2f} ms, held {lock["held_ms_per_batch"]:.2f} ms '
                 f'(COMMIT {lock["commit_ms_per_batch"]:.2f} ms)')
    cpu = f'; CPU s: arbiter {med["arbiter_cpu_s"]}, postgres {med["postgres_cpu_s"]}'
    print(f'{setup}: {rates} decisions/s (median run: p50 {med["p50_ms"]:.1f} ms, p99 {med["p99_ms"]:.1f} ms{extra}{cpu})')
PY
