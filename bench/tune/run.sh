#!/usr/bin/env bash
# Tuning benchmark: `arbiter tune` against the strongest Python peer
# (bench/tune/peer.py: polars, np.bincount, scipy's betainc, the same exact
# allocation) on the same synthetic history, as CSV and as Parquet. Both run
# on the same cores, alternating, RUNS times each; medians are reported, with
# peak memory (GNU time's maximum resident set size). Arbiter counts while it
# reads, so its "after loading" is only the scan and the allocation; the
# "memory" row times counting, scan and allocation on a history already in
# memory on one thread (`arbiter bench tune`), the peer's after-loading work.
#   bench/tune/run.sh                 # 10 million decisions, 100 classes
#   N=1000000 bench/tune/run.sh       # smaller
# Needs: GNU time (/usr/bin/time) and python3 with polars, numpy, scipy
# (pip install -r bench/tune/requirements.txt; PYTHON=path/to/python to pick one).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-10000000}
CLASSES=${CLASSES:-100}
SEED=${SEED:-42}
RUNS=${RUNS:-5}
PYTHON=${PYTHON:-python3}
BUDGET=0.10 E=0.05 DELTA=0.05
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 1; }
"$PYTHON" -c "import polars, numpy, scipy" 2>/dev/null \
  || { echo "needs polars, numpy, scipy: pip install -r bench/tune/requirements.txt" >&2; exit 1; }

cargo build --release -q -p arbiter-cli
bin=target/release/arbiter
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for ext in csv parquet; do
  $bin demo generate --decisions "$N" --classes "$CLASSES" --seed "$SEED" --out "$dir/history.$ext" 2>/dev/null
done
echo "history: $N decisions, $CLASSES classes; CSV $(du -h "$dir/history.csv" | cut -f1), Parquet $(du -h "$dir/history.parquet" | cut -f1)"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $($PYTHON -c 'import polars; print("polars", polars.__version__)')"

# run NAME CMD...: one timed run; appends "wall rss_mib after_loading" to $dir/NAME
run() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$dir/time" "$@" > "$dir/out.json"
  local after
  after=$("$PYTHON" -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['tune_seconds'])" "$dir/out.json")
  read -r wall rss < "$dir/time"
  echo "$wall $((rss / 1024)) $after" >> "$dir/$name"
  cp "$dir/out.json" "$dir/$name.json"
}
for i in $(seq "$RUNS"); do
  for ext in csv parquet; do
    run "arbiter-$ext" $bin tune --history "$dir/history.$ext" --max-escalation-rate $BUDGET --max-auto-error $E --delta $DELTA --json
    run "peer-$ext" "$PYTHON" bench/tune/peer.py "$dir/history.$ext" $BUDGET $E $DELTA
  done
done

# Arbiter counts while it reads, so its "after loading" leaves the counting out; this is the
# same work as the peer's after loading (count, scan, allocate) on a history already in memory
inmem=$($bin bench tune --decisions "$N" --classes "$CLASSES" --seed "$SEED" --runs "$RUNS")

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { awk -v c="$2" '{print $c}' "$dir/$1" | median; }
printf '\nmedians of %s alternating runs, both on all %s cores\n' "$RUNS" "$(nproc)"
printf '%-10s %-22s %12s %12s %8s\n' format measure arbiter peer ratio
for ext in csv parquet; do
  a_after=$(col "arbiter-$ext" 3); p_after=$(col "peer-$ext" 3)
  a_wall=$(col "arbiter-$ext" 1); p_wall=$(col "peer-$ext" 1)
  a_rss=$(col "arbiter-$ext" 2); p_rss=$(col "peer-$ext" 2)
  printf '%-10s %-22s %11.3fs %11.3fs %7.1fx\n' "$ext" "after loading" "$a_after" "$p_after" "$(echo "$p_after / $a_after" | bc -l)"
  printf '%-10s %-22s %11.2fs %11.2fs %7.1fx\n' "$ext" "end to end" "$a_wall" "$p_wall" "$(echo "$p_wall / $a_wall" | bc -l)"
  printf '%-10s %-22s %9s MiB %8s MiB %7.1fx\n' "$ext" "peak memory" "$a_rss" "$p_rss" "$(echo "$p_rss / $a_rss" | bc -l)"
done
inmem_total=$(echo "$inmem" | sed -E 's/.*total ([0-9.]+) s.*/\1/')
p_after=$(col "peer-csv" 3)
printf '%-10s %-22s %11.3fs %11.3fs %7.1fx\n' "memory" "count, scan, allocate" "$inmem_total" "$p_after" "$(echo "$p_after / $inmem_total" | bc -l)"
echo "  (arbiter bench tune: $inmem)"
for ext in csv parquet; do
  "$PYTHON" - "$dir/arbiter-$ext.json" "$dir/peer-$ext.json" "$ext" <<'PY'
import json, sys
r = {c["action"]: c["threshold"] for c in json.load(open(sys.argv[1]))["result"]["classes"]}
p = json.load(open(sys.argv[2]))["thresholds"]
diff = [k for k in r if r[k] != p.get(k)]
print("%s: " % sys.argv[3] + ("all %d thresholds identical" % len(r) if not diff and len(r) == len(p) else "DIFFERENT for %d classes: %s" % (len(diff), diff[:5])))
PY
done
