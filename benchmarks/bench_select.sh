#!/usr/bin/env bash
# Scoring + selection throughput (rows/s) of `capheads select` on a synthetic pool archive of the
# Llama-3.1-8B shape ([N, 32, 32, 128] float16, 256 KiB a row), for 1 and 2 ranks, and its peak
# memory (max RSS per rank) at two pool sizes to show it does not grow with the pool.
# usage: bash benchmarks/bench_select.sh [BUILD] [DIR] [N]     (defaults: build /tmp/ch_bench_select 100000)
# Needs N x 256 KiB of disk in DIR (26 GB for 100,000 rows).
set -euo pipefail
B=${1:-build}; D=${2:-/tmp/ch_bench_select}; N=${3:-100000}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
mkdir -p "$D"
run() { mpirun -n "$1" --oversubscribe "${@:2}"; }
S=$B/benchmarks/synth_archive
echo "# building inputs in $D (probe set 2,000 rows, tasks 400 rows, pool $N rows; 8B shape)"
[ -f "$D/probeset.h5" ] || run 2 "$S" "$D/probeset.h5" "$D/probeset.jsonl" 2000 32 32 128 --labels 2>&1 | tail -1
[ -f "$D/probes.h5" ] || run 2 "$B/capheads" probe --input "$D/probeset.h5" --output "$D/probes.h5" --top-k 16 >/dev/null 2>&1
[ -f "$D/tasks.h5" ] || run 2 "$S" "$D/tasks.h5" "$D/tasks.jsonl" 400 32 32 128 --tasks 8 --seed 3 2>&1 | tail -1
small=$((N / 4))
[ -f "$D/pool_small.h5" ] || run 2 "$S" "$D/pool_small.h5" "$D/pool_small.jsonl" $small 32 32 128 --seed 5 2>&1 | tail -1
[ -f "$D/pool.h5" ] || run 2 "$S" "$D/pool.h5" "$D/pool.jsonl" "$N" 32 32 128 --seed 5 2>&1 | tail -1
# the fitted map of synthetic data may sit in few layers; the worst case for select's I/O is a
# map whose heads span every layer: the same probes with top_heads rewritten across all 32 layers
if [ ! -f "$D/probes_all_layers.h5" ]; then
  cp "$D/probes.h5" "$D/probes_all_layers.h5"
  /usr/bin/python3 - "$D/probes_all_layers.h5" <<'PY'
import h5py, sys
f = h5py.File(sys.argv[1], "r+")
t = f["top_heads"][:]
k = t.shape[1]
for c in range(t.shape[0]):
    for j in range(k):
        t[c, j] = ((c * k + j) % 32) * 32 + (c * 7 + j) % 32   # layer (c*k+j) mod 32
f["top_heads"][...] = t
PY
fi
for probes in probes probes_all_layers; do
# select refuses a mix made from other probes (mix.h5 probes_sha256): one mix per map
[ -d "$D/mix_$probes" ] || run 2 "$B/capheads" decompose --probes "$D/$probes.h5" --input "$D/tasks.h5" \
  --output "$D/mix_$probes" >/dev/null
layers=$(/usr/bin/python3 -c "import h5py,sys; t=h5py.File(sys.argv[1])['top_heads'][:]; print(len(set((t//32).ravel())))" "$D/$probes.h5")
echo
echo "# map $probes.h5: mapped heads span $layers of 32 layers (select reads only those layers' chunks)"
printf "%-6s %10s %8s %10s %12s %14s\n" ranks rows tasks seconds rows/s "max RSS MiB"
for pool in pool_small pool; do
  rows=$(grep -c . "$D/$pool.jsonl")
  for r in 1 2; do
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    t0=$(date +%s.%N)
    mpirun -n $r --oversubscribe "$B/capheads" select --probes "$D/$probes.h5" \
      --mix "$D/mix_$probes" --input "$D/$pool.h5" --pool "$D/$pool.jsonl" --fraction 0.05 --output "$D/sel_${pool}_$r" \
      >"$D/sel.out" 2>&1
    t1=$(date +%s.%N)
    rss=$(sed -n 's/.*peak memory per rank \([0-9]*\) MiB.*/\1/p' "$D/sel.out")
    awk -v r=$r -v n=$rows -v a=$t0 -v b=$t1 -v m=$rss 'BEGIN{printf "%-6d %10d %8d %10.1f %12.0f %14d\n", r, n, 8, b-a, n/(b-a), m}'
  done
done
done
