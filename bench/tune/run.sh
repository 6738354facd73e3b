#!/usr/bin/env bash
# Tuning benchmark: `arbiter tune` against the Python reference on the same
# synthetic history, pinned to one core, three runs each (medians reported).
#   bench/tune/run.sh                 # 10 million decisions, 100 classes
#   N=1000000 bench/tune/run.sh       # smaller
# Needs: python3 with numpy, pandas, scipy, scikit-learn (pip install -r bench/tune/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-10000000}
CLASSES=${CLASSES:-100}
SEED=${SEED:-42}
RUNS=${RUNS:-3}
ARGS=(--max-escalation-rate 0.10 --max-auto-error 0.05 --delta 0.05)
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)

cargo build --release -q -p arbiter-cli
bin=target/release/arbiter
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
$bin demo generate --decisions "$N" --classes "$CLASSES" --seed "$SEED" --out "$dir/history.csv"
echo "history: $N decisions, $CLASSES classes, $(du -h "$dir/history.csv" | cut -f1)"

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for i in $(seq "$RUNS"); do
  s=$(date +%s.%N)
  "${pin[@]}" $bin tune --history "$dir/history.csv" "${ARGS[@]}" --json > "$dir/rust-$i.json"
  e=$(date +%s.%N)
  echo "$e - $s" | bc >> "$dir/rust-total"
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['tune_seconds'])" "$dir/rust-$i.json" >> "$dir/rust-tune"
  s=$(date +%s.%N)
  "${pin[@]}" env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python3 bench/tune/reference.py "$dir/history.csv" 0.10 0.05 0.05 > "$dir/py-$i.json"
  e=$(date +%s.%N)
  echo "$e - $s" | bc >> "$dir/py-total"
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['tune_seconds'])" "$dir/py-$i.json" >> "$dir/py-tune"
done
rt=$(median < "$dir/rust-tune"); rT=$(median < "$dir/rust-total")
pt=$(median < "$dir/py-tune"); pT=$(median < "$dir/py-total")
same=$(python3 - "$dir/rust-1.json" "$dir/py-1.json" <<'PY'
import json, sys
r = {c["action"]: c["threshold"] for c in json.load(open(sys.argv[1]))["result"]["classes"]}
p = json.load(open(sys.argv[2]))["thresholds"]
diff = [k for k in r if r[k] != p.get(k)]
print("all %d thresholds identical" % len(r) if not diff else "DIFFERENT for %d classes: %s" % (len(diff), diff[:5]))
PY
)
printf '%-28s %12s %12s\n' "median of $RUNS runs (1 core)" "arbiter" "python ref"
printf '%-28s %11.3fs %11.3fs   (%.0fx)\n' "tune, after loading" "$rt" "$pt" "$(echo "$pt / $rt" | bc -l)"
printf '%-28s %11.3fs %11.3fs   (%.1fx)\n' "end to end from CSV" "$rT" "$pT" "$(echo "$pT / $rT" | bc -l)"
echo "thresholds: $same"
