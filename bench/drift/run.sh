#!/usr/bin/env bash
# Drift benchmark: Arbiter's monitor on the scenario kinds (seasonality,
# bursts, a ramp, a low-volume confidence slide, an error doubling with late
# labels) over SEEDS seeds, the same tests against the recent reference only
# (no seasonal baseline), and river's ADWIN on the very same streams, side by side.
#   bench/drift/run.sh              # 20 seeds
#   SEEDS=5 bench/drift/run.sh      # quicker
# Needs python3 with river (pip install -r bench/drift/requirements.txt;
# PYTHON=path/to/python to pick one). The streams (about 450 MB for 20 seeds)
# go to a temporary directory, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
SEEDS=${SEEDS:-20}
PYTHON=${PYTHON:-python3}
"$PYTHON" -c "import river" 2>/dev/null \
  || { echo "needs river: pip install -r bench/drift/requirements.txt" >&2; exit 1; }
cargo build --release -q -p arbiter-cli
bin=target/release/arbiter
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $($PYTHON -c 'import river; print("river", river.__version__)')"
start=$(date +%s)
$bin demo evaluate --scenarios --seeds "$SEEDS" --export "$dir/streams" --json > "$dir/ours.json"
$bin demo evaluate --scenarios --seeds "$SEEDS"
echo "Arbiter: $(( $(date +%s) - start )) s for both runs (the first also writes the streams)"
echo
echo "the same tests against the 12 h before the recent window (--seasonal-days 0):"
$bin demo evaluate --scenarios --seeds "$SEEDS" --seasonal-days 0 | tail -n +2
echo
start=$(date +%s)
"$PYTHON" bench/drift/adwin.py "$dir/streams" --ours "$dir/ours.json"
echo "ADWIN: $(( $(date +%s) - start )) s"
