#!/usr/bin/env bash
# End-to-end test of slurm/ on a real Slurm: brings up a single-node cluster on localhost
# (tests/slurm/cluster.sh), then
#   1. srun --mpi=pmix -n 2 capheads version is ONE MPI job of 2 ranks (one line, from rank 0)
#   2. slurm/bind.sh gives node-local rank r GPU r of the node's CUDA_VISIBLE_DEVICES list
#   3. slurm/submit_pipeline.sh chains prepare -> extract -> probe -> decompose -> select (afterok,
#      per-task arrays) and every job completes with its outputs, each stage seeing its inputs; the
#      per-stage --*-args reach their stage (and only it), in --dry-run's sbatch lines and in a run
#  3b. template parameters: environment default < command line, unknown options passed through
#   4. a failed stage holds back everything after it (afterok never satisfied)
#   5. an extraction signalled mid-run (the --signal=B:USR1 time-limit notice) requeues itself and
#      the next run resumes (--resume, restart count 1) instead of starting again
#  5b. the same with the real `capheads extract`: the resumed archive equals an uninterrupted run
#  5c. the real stages on the demo data through submit_pipeline.sh, prepare included, each stage
#      writing its own timing record (CH_STAGE_TIMING=1); the same run directly (mpirun, same inputs
#      and options) gives byte-identical prepared corpora and selections, and equal probes, mixes, scores
#   6. slurm/scaling.sh runs extract at 1 and 2 ranks and reports throughput/speedup/efficiency + SVG
#   7. the cluster shuts down cleanly: slurmctld and slurmd stop on `scontrol shutdown`, munged on
#      TERM, and no daemon of this cluster is left
# (the trap EXIT also stops the cluster after a failure).  Exit 77 (ctest SKIP) only if the daemons
# cannot start; a missing python3-h5py or capheads stage fails parts 5b-6.
# The pipeline stages are run by tests/slurm/fake_capheads.sh, a stand-in with the stages' command
# lines (this test is about the Slurm plumbing; the stages have their own tests).
set -uo pipefail
SRC=${CH_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
export CAPHEADS=${CAPHEADS:-$SRC/build/capheads}
FAKE=$SRC/tests/slurm/fake_capheads.sh
export CH_SLURM_DIR=$SRC/slurm     # the templates find common.sh and bind.sh here
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
unset CH_INPUT CH_OUTPUT CH_POOL CH_LIST CH_TIMING

dir=$(mktemp -d /tmp/chslurm-test.XXXXXX) && chmod 755 "$dir"   # munged (user munge) must reach cluster/
cleanup() { bash "$SRC/tests/slurm/cluster.sh" down "$dir/cluster" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
trap 'exit 1' INT TERM

bash "$SRC/tests/slurm/cluster.sh" up "$dir/cluster"
rc=$?
if [ $rc -eq 77 ]; then echo "SKIP: the Slurm daemons could not start here (reason above)"; exit 77; fi
[ $rc -eq 0 ] || { echo "FAIL: cluster.sh up exited $rc"; exit 1; }
# shellcheck disable=SC1091
source "$dir/cluster/env"

nfail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; nfail=$((nfail + 1)); }
# wait_done JOBID... : until none of them is pending/running (timeout 150 s), or all that are left
# are stuck behind a failed job (pending on dependencies, one of them DependencyNeverSatisfied: they
# would wait for ever; the caller sees the states)
wait_done() {
  local t0=$SECONDS q
  while q=$(squeue -h -j "$(IFS=,; echo "$*")" -t PD,R,CG,CF,RQ,RS,S -o %r 2>/dev/null) && [ -n "$q" ]; do
    grep -qv '^Dependency\(NeverSatisfied\)\{0,1\}$' <<<"$q" || ! grep -qx DependencyNeverSatisfied <<<"$q" || return 0
    [ $((SECONDS - t0)) -lt 150 ] || { bad "jobs $* still queued after 150 s"; squeue >&2; return 1; }
    sleep 0.5
  done
}
job_state() { scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n 's/^JobState=//p' | sort -u | tr '\n' ' '; }
job_field() { scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }

cd "$dir" || exit 1

# 1. one MPI world through srun's PMIx
out=$(srun --mpi=pmix -n 2 "$CAPHEADS" version 2>&1)
if [ "$(grep -c '^capheads ' <<<"$out")" -eq 1 ]; then ok "srun --mpi=pmix -n 2 capheads version: one world ($out)"
else bad "srun --mpi=pmix -n 2 capheads version printed: $out"; fi

# 2. GPU binding by node-local rank
out=$(CUDA_VISIBLE_DEVICES=0,1,2,3 srun -n 4 bash "$SRC/slurm/bind.sh" \
        bash -c 'echo "$SLURM_LOCALID:$CUDA_VISIBLE_DEVICES"' | sort | tr '\n' ' ')
[ "$out" = "0:0 1:1 2:2 3:3 " ] && ok "bind.sh: local rank r gets GPU r ($out)" || bad "bind.sh gave: $out"

# 3. the whole pipeline through the submit script
mkdir -p data model && echo "{}" >model/config.json
for f in probe_src pool task_a task_b; do seq 1 5 | sed 's/.*/{"id":"&","text":"x"}/' >"data/$f.src"; done
cat >prep.txt <<PREP
# one capheads prepare call per line
jsonl $dir/data/probe_src.src --output $dir/data/probeset.jsonl
jsonl $dir/data/pool.src --output $dir/data/pool.jsonl
jsonl $dir/data/task_a.src --output $dir/data/mmlu_law.jsonl
jsonl $dir/data/task_b.src --output $dir/data/bbh_dyck.jsonl
PREP
export FAKE_LOG=$dir/calls.log CAPHEADS_REAL=$CAPHEADS
t0=$SECONDS
# per-stage options (--prepare-args ... --select-args): the dry run shows each on its stage's line only
stage_args=(--prepare-args "--limit 3" --extract-args "--hidden" --probe-args "--lambda 0.5"
            --decompose-args "--block-rows 64" --select-args "--score cosine")
bash "$SRC/slurm/submit_pipeline.sh" --dry-run --model model --prepare "$dir/prep.txt" --probeset data/probeset.jsonl \
  --pool data/pool.jsonl --tasks data/mmlu_law.jsonl,data/bbh_dyck.jsonl --out dry "${stage_args[@]}" 2>dry.err
dry_ok=1
for want in "prepare.sbatch --commands $dir/prep.txt --limit 3\$" "extract.sbatch .* --hidden\$" \
            "probe.sbatch .* --lambda 0.5\$" "decompose.sbatch .* --block-rows 64\$" "select.sbatch .* --score cosine\$"; do
  grep -q -- "$want" <(sed 's/ *$//' dry.err) || dry_ok=0
done
[ "$(grep -c -- '--limit 3\|--lambda 0.5\|--block-rows 64\|--score cosine' dry.err)" -eq 4 ] || dry_ok=0
[ "$(grep -c -- '--hidden' dry.err)" -eq 3 ] || dry_ok=0
[ $dry_ok -eq 1 ] && ok "submit_pipeline --dry-run: --{prepare,extract,probe,decompose,select}-args on their stage's sbatch line only" ||
  bad "dry run with per-stage args: $(cat dry.err)"
CAPHEADS=$FAKE bash "$SRC/slurm/submit_pipeline.sh" --model model --prepare "$dir/prep.txt" \
  --probeset data/probeset.jsonl --pool data/pool.jsonl --tasks data/mmlu_law.jsonl,data/bbh_dyck.jsonl \
  --out run --ranks-per-node 2 --top-k 4 --fraction 0.2 --probe-args "--lambda 0.5" --select-args "--score cosine" 2>submit.err
[ -s run/jobs.txt ] || { bad "submit_pipeline.sh wrote no jobs: $(cat submit.err)"; exit 1; }
mapfile -t ids < <(cut -d' ' -f2 run/jobs.txt)
wait_done "${ids[@]}"
states=""
while read -r name id; do states+="$name=$(job_state "$id")"; done <run/jobs.txt
if [ "$(grep -o COMPLETED <<<"$states" | wc -l)" -eq 7 ] && ! grep -qvE 'COMPLETED' <<<"$(tr '=' '\n' <<<"$states" | grep -E '^[A-Z]')"; then
  ok "pipeline: 7 jobs (prepare, 3 extract, probe, decompose[2], select[2]) completed in $((SECONDS - t0)) s"
else bad "pipeline job states: $states"; tail -n 5 run/logs/* >&2; fi
for f in archives/probeset.h5 archives/pool.h5 archives/tasks/mmlu_law.h5 archives/tasks/bbh_dyck.h5 probes.h5 \
         mix/mmlu_law/mix.csv mix/bbh_dyck/mix.csv selected/mmlu_law/selected.jsonl selected/bbh_dyck/selected.jsonl; do
  [ -s "run/$f" ] || bad "pipeline output run/$f missing"
done
grep -q "selected 0.2 for $dir/run/mix/bbh_dyck" run/selected/bbh_dyck/selected.jsonl 2>/dev/null &&
  ok "select array element got its task's mix and --fraction" || bad "select output: $(cat run/selected/bbh_dyck/selected.jsonl 2>&1)"
grep -q '^extract rank=1/2 .*--input .*probeset.jsonl' calls.log && ok "extract ran 2 ranks (--ranks-per-node 2)" ||
  bad "extract ranks: $(grep ^extract calls.log)"
grep -q '^probe rank=0/.* --top-k 4' calls.log && ok "probe got --top-k 4" || bad "probe call: $(grep ^probe calls.log)"
if grep -q '^probe rank=0/.* --lambda 0.5$' calls.log && [ "$(grep -c '^select rank=0/.* --score cosine$' calls.log)" -eq 2 ] &&
   ! grep -v '^probe' calls.log | grep -q -- '--lambda' && ! grep -v '^select' calls.log | grep -q -- '--score'; then
  ok "--probe-args / --select-args reached probe and both select elements, and only them"
else bad "per-stage args: $(grep -E '^(probe|select) rank=0' calls.log)"; fi

# 3b. parameters: environment (CH_TOP_K) sets a default, the command line wins, unknown options pass through
rm -f "$FAKE_LOG"
a=$(CAPHEADS=$FAKE CH_TOP_K=7 CH_HEATMAP=hm sbatch --parsable -o /dev/null "$SRC/slurm/probe.sbatch" \
      --input run/archives/probeset.h5 --output p1.h5)
b=$(CAPHEADS=$FAKE CH_TOP_K=7 sbatch --parsable -o /dev/null "$SRC/slurm/probe.sbatch" \
      --input run/archives/probeset.h5 --top-k 3 --output p2.h5 --lambda 0.5)
wait_done "$a" "$b"
if grep -q '^probe rank=0/.* --output p1.h5 --top-k 7 --heatmap hm$' calls.log &&
   grep -q '^probe rank=0/.* --output p2.h5 --top-k 3 --lambda 0.5$' calls.log; then
  ok "template parameters: environment default, command line override, pass-through"
else bad "template parameters: $(grep ^probe calls.log)"; fi

# 4. a failing stage holds back its dependents
rm -f "$FAKE_LOG"
CAPHEADS=$FAKE bash "$SRC/slurm/submit_pipeline.sh" --model model --probeset data/missing.jsonl \
  --pool data/pool.jsonl --tasks data/mmlu_law.jsonl --out run2 2>/dev/null
xp=$(sed -n 's/^extract-probeset //p' run2/jobs.txt); pr=$(sed -n 's/^probe //p' run2/jobs.txt)
t1=$SECONDS
while [ "$(job_state "$xp")" != "FAILED " ] && [ $((SECONDS - t1)) -lt 60 ]; do sleep 0.5; done
sleep 3
reason=$(job_field "$pr" Reason)
if [ "$(job_state "$xp")" = "FAILED " ] && [ "$(job_state "$pr")" = "PENDING " ] && [ "$reason" = DependencyNeverSatisfied ]; then
  ok "failed extract holds back probe (probe PENDING, $reason)"
else bad "after a failed extract: extract $(job_state "$xp"), probe $(job_state "$pr") ($reason)"; fi
mapfile -t ids2 < <(cut -d' ' -f2 run2/jobs.txt); scancel "${ids2[@]}" 2>/dev/null

# 5. an extraction told to stop (time limit / preemption notice) requeues and resumes
rm -f "$FAKE_LOG"
seq 1 30 | sed 's/.*/{"id":"&","text":"x"}/' >data/big.jsonl
j=$(CAPHEADS=$FAKE FAKE_DELAY=0.2 sbatch --parsable -o "$dir/rq-%j.out" "$SRC/slurm/extract.sbatch" \
      --model model --input data/big.jsonl --output rq/big.h5)
t1=$SECONDS
while [ "$(cat rq/big.h5 2>/dev/null | grep -c '^done')" -lt 5 ] && [ $((SECONDS - t1)) -lt 30 ]; do sleep 0.2; done
scancel --signal=USR1 --batch "$j"     # what --signal=B:USR1@600 delivers before the time limit
while [ "$(job_field "$j" Restarts)" != 1 ] && [ $((SECONDS - t1)) -lt 40 ]; do sleep 0.2; done
n_first=$(grep -c '^done' rq/big.h5)
# Slurm holds a requeued batch job back ~2 minutes; a test need not wait for that, but a restart
# within the same second is refused by slurmd ("Job credential revoked"): wait 2 s, then release
while [ "$(job_state "$j")" != "PENDING " ] && [ $((SECONDS - t1)) -lt 50 ]; do sleep 0.2; done
sleep 2
while [ "$(job_field "$j" Reason)" = BeginTime ] && [ $((SECONDS - t1)) -lt 60 ]; do
  scontrol update JobId="$j" StartTime=now 2>/dev/null; sleep 0.5
done
wait_done "$j"
n_lines=$(wc -l <rq/big.h5); n_uniq=$(sort -u rq/big.h5 | wc -l)
if [ "$(job_state "$j")" = "COMPLETED " ] && [ "$n_first" -lt 30 ] && [ "$n_lines" -eq 30 ] && [ "$n_uniq" -eq 30 ] &&
   grep -q '^extract rank=0/1 restart=1 .*--resume' calls.log && ! grep -q '^extract rank=0/1 restart=0 .*--resume' calls.log; then
  ok "extract: stopped after $n_first of 30 records, requeued (restart 1), resumed with --resume to 30"
else
  bad "requeue/resume: state $(job_state "$j") restarts $(job_field "$j" Restarts), $n_first then $n_lines lines ($n_uniq distinct)"
  cat "$dir"/rq-*.out calls.log >&2
  grep -E "JobId=${j}([^0-9]|$)" "$dir/cluster/log/slurmctld.log" >&2
fi

# 5b. the same with the real `capheads extract` on the demo model: killed mid-run by the requeue, the
# resumed archive equals an uninterrupted single-rank extraction (DESIGN: byte-identical rows)
PY=/usr/bin/python3
missing=""
$PY -c 'import h5py' 2>/dev/null || missing+=" python3-h5py (/usr/bin/python3 -c 'import h5py'; scripts/install-deps.sh installs it)"
for s in prepare extract probe decompose select; do
  # not piped into grep -q, which would SIGPIPE a help text longer than one stdio buffer
  grep -q -- '--timing' <<<"$("$CAPHEADS" "$s" --help 2>&1)" || missing+=" capheads $s (with --timing)"
done
grep -q -- --resume <<<"$("$CAPHEADS" extract --help 2>&1)" || missing+=" capheads extract --resume" # not a pipe: grep -q would end it early (SIGPIPE)
if [ -z "$missing" ]; then
  mkdir -p demo_model
  cp "$SRC/data/demo/model/config.json" "$SRC/data/demo/model/model.safetensors" demo_model/
  gzip -dc "$SRC/tests/data/tokenizers/llama3_1/tokenizer.json.gz" >demo_model/tokenizer.json
  gzip -dc "$SRC/tests/data/tokenizers/llama3_1/tokenizer_config.json.gz" >demo_model/tokenizer_config.json
  $PY -c 'import json
for i in range(4000): print(json.dumps({"id": "q%d" % i, "text": "Question %d: what is %d plus %d? Answer:" % (i, i, 7 * i)}))' >data/q.jsonl
  xa=(--model demo_model --input data/q.jsonl --batch-tokens 64 --device cpu)
  srun --mpi=pmix -n 1 "$CAPHEADS" extract "${xa[@]}" --output ref.h5 2>ref.err || bad "reference extract: $(tail -2 ref.err)"
  # sync (and mark rows done) after every batch, so that a stop this early leaves done rows behind
  j=$(CAPHEADS_SYNC_MIB=0 sbatch --parsable -o "$dir/rx-%j.out" --ntasks-per-node=2 "$SRC/slurm/extract.sbatch" "${xa[@]}" --output rx/q.h5)
  t1=$SECONDS
  while ! grep -q '^extract: 4000 records' "$dir/rx-$j.out" 2>/dev/null && [ $((SECONDS - t1)) -lt 30 ]; do sleep 0.2; done
  sleep 0.3   # into the run: ~1/4 of it on an idle 2-core machine, a few batches on a loaded one
  scancel --signal=USR1 --batch "$j"
  while [ "$(job_field "$j" Restarts)" != 1 ] && [ $((SECONDS - t1)) -lt 45 ]; do sleep 0.2; done
  while [ "$(job_state "$j")" != "PENDING " ] && [ $((SECONDS - t1)) -lt 50 ]; do sleep 0.2; done
  sleep 2   # see 5.
  # the stopped run's archive is still under its partial name (docs/faults.md); none under rx/q.h5
  n_first=$($PY -c 'import h5py, sys; print(int(h5py.File(sys.argv[1], "r")["done"][:].sum()))' rx/.q.h5.partial 2>&1)
  [ ! -e rx/q.h5 ] || n_first="rx/q.h5 exists before the run finished"
  while [ "$(job_field "$j" Reason)" = BeginTime ] && [ $((SECONDS - t1)) -lt 60 ]; do
    scontrol update JobId="$j" StartTime=now 2>/dev/null; sleep 0.5
  done
  wait_done "$j"
  same=$($PY - rx/q.h5 ref.h5 <<'PYEOF' 2>&1
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
ok = all(np.array_equal(a[k][...], b[k][...]) for k in ("activations", "ids", "done", "n_tokens"))
print("same" if ok and a["done"][:].all() else "differ")
PYEOF
)
  if [ "$(job_state "$j")" = "COMPLETED " ] && [ "$n_first" -gt 0 ] 2>/dev/null && [ "$n_first" -lt 4000 ] &&
     grep -q '(resuming)' "$dir/rx-$j.out" && [ "$same" = same ]; then
    ok "capheads extract: requeued with $n_first of 4000 rows done, resumed ('(resuming)'); archive equals an uninterrupted 1-rank run"
  else
    bad "capheads extract requeue: state $(job_state "$j"), done after stop: $n_first, compare: $same"
    cat "$dir/rx-$j.out" >&2
  fi

  # 5c. the real pipeline on the demo data through the submit script, prepare included (one job runs
  # scripts/make-demo-data.sh's conversions of data/demo), one task corpus per array element, every
  # stage appending its own timing record (CH_STAGE_TIMING=1).  Meanwhile the same stages run
  # directly (mpirun, the same commands, options and the templates' rank counts) into direct/.
  dd=$SRC/data/demo
  prep_commands() {  # prep_commands OUTDIR: make-demo-data.sh's prepare calls, one per line
    local o=$1 p=$1/parts prof="" tasks="" s
    for s in professional_medicine professional_accounting college_medicine; do
      prof+=" $dd/mmlu/data/dev/${s}_dev.csv $dd/mmlu/data/val/${s}_val.csv"; done
    for s in high_school_physics abstract_algebra high_school_world_history; do
      tasks+=" $dd/mmlu/data/dev/${s}_dev.csv"; done
    echo "gsm8k $dd/gsm8k/test.jsonl --output $p/math.jsonl"
    echo "squad $dd/squad --output $p/reading.jsonl"
    echo "csqa $dd/csqa --output $p/commonsense.jsonl"
    echo "arc $dd/arc --output $p/science.jsonl"
    echo "mmlu$prof --label professional --output $p/professional.jsonl"
    echo "probeset math=$p/math.jsonl reading=$p/reading.jsonl commonsense=$p/commonsense.jsonl science=$p/science.jsonl professional=$p/professional.jsonl --seed 1 --output $o/probeset.jsonl"
    echo "mmlu$tasks --output $p/tasks_mmlu.jsonl"
    echo "bbh-cot $dd/bbh/cot-prompts --output $p/tasks_bbh.jsonl"
    echo "less $dd/less/pool.jsonl --output $o/pool.jsonl"
  }
  mkdir -p real/data/parts direct/data/parts direct/archives/tasks direct/mix direct/selected
  prep_commands "$dir/real/data" >real-prep.txt
  prep_commands "$dir/direct/data" >direct-prep.txt
  r=$dir/real/data
  t0=$SECONDS
  CH_TIMING=$dir/real/timing.jsonl CH_STAGE_TIMING=1 bash "$SRC/slurm/submit_pipeline.sh" --model demo_model \
    --prepare "$dir/real-prep.txt" --probeset "$r/probeset.jsonl" --pool "$r/pool.jsonl" \
    --tasks "$r/parts/tasks_mmlu.jsonl,$r/parts/tasks_bbh.jsonl" --out real \
    --ranks-per-node 2 --top-k 4 --extract-args "--hidden --device cpu" 2>real.err
  direct() {  # what the jobs run, without Slurm: ranks as the templates ask (#SBATCH lines)
    set -e
    local mp=("${MPIEXEC:-mpirun}" --oversubscribe -n) d=direct xa=(--model demo_model --hidden --device cpu) l t
    while read -r -a l; do "$CAPHEADS" prepare "${l[@]}"; done <direct-prep.txt
    "${mp[@]}" 2 "$CAPHEADS" extract "${xa[@]}" --input $d/data/probeset.jsonl --output $d/archives/probeset.h5
    "${mp[@]}" 2 "$CAPHEADS" extract "${xa[@]}" --input $d/data/pool.jsonl --output $d/archives/pool.h5
    for t in tasks_mmlu tasks_bbh; do
      "${mp[@]}" 2 "$CAPHEADS" extract "${xa[@]}" --input $d/data/parts/$t.jsonl --output $d/archives/tasks/$t.h5
    done
    "${mp[@]}" 4 "$CAPHEADS" probe --input $d/archives/probeset.h5 --output $d/probes.h5 --top-k 4 --heatmap $d/heatmaps
    for t in tasks_mmlu tasks_bbh; do
      "${mp[@]}" 2 "$CAPHEADS" decompose --probes $d/probes.h5 --input $d/archives/tasks/$t.h5 --output $d/mix/$t
      "${mp[@]}" 4 "$CAPHEADS" select --probes $d/probes.h5 --mix $d/mix/$t --input $d/archives/pool.h5 \
        --pool $d/data/pool.jsonl --fraction 0.05 --output $d/selected/$t
    done
  }
  (direct) >direct.log 2>&1 &
  direct_pid=$!
  mapfile -t ids < <(cut -d' ' -f2 real/jobs.txt)
  wait_done "${ids[@]}"
  t_real=$((SECONDS - t0))
  wait "$direct_pid"; direct_rc=$?
  states=""
  while read -r name id; do states+="$name=$(job_state "$id")"; done <real/jobs.txt
  # every selected line is a pool line, byte for byte; ceil(0.05 x 300) = 15 per target task
  sel=$($PY - real/data/pool.jsonl real/selected/tasks_mmlu real/selected/tasks_bbh <<'PYEOF' 2>&1
import glob, sys
pool = set(open(sys.argv[1], "rb").read().splitlines())
files = [f for d in sys.argv[2:] for f in sorted(glob.glob(d + "/*.jsonl"))]
counts = [len(open(f, "rb").read().splitlines()) for f in files]
subset = all(l in pool for f in files for l in open(f, "rb").read().splitlines())
print("%d tasks, counts %s, subset %s" % (len(files), sorted(set(counts)), subset))
PYEOF
)
  if [ "$(grep -o COMPLETED <<<"$states" | wc -l)" -eq 7 ] && [ -s real/probes.h5 ] &&
     ls real/mix/tasks_bbh/* >/dev/null 2>&1 && grep -q '^7 tasks, counts \[15\], subset True' <<<"$sel"; then
    ok "real pipeline (prepare + demo model, 7 jobs) completed in $t_real s: $sel"
  else bad "real pipeline: $states; selection: $sel"; tail -n 3 real/logs/* >&2; fi
  # the Slurm run equals the direct run
  same=$($PY - real direct <<'PYEOF' 2>&1
import glob, os, sys, h5py, numpy as np
a, b = sys.argv[1:3]
bad, n_bytes, n_h5 = [], 0, 0
def rel(root, pat): return sorted(os.path.relpath(f, root) for f in glob.glob(os.path.join(root, pat), recursive=True))
for pat in ("data/**/*.jsonl", "selected/*/*.jsonl", "mix/*/mix.csv"):      # byte for byte
    fa, fb = rel(a, pat), rel(b, pat)
    if not fa or fa != fb: bad.append("%s: %s vs %s" % (pat, fa, fb)); continue
    for f in fa:
        n_bytes += 1
        if open(os.path.join(a, f), "rb").read() != open(os.path.join(b, f), "rb").read(): bad.append(f + " differs")
def datasets(h):
    out = {}
    h.visititems(lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
    return out
for pat in ("probes.h5", "mix/*/mix.h5", "selected/*/scores.h5"):            # every dataset, numerically
    fa, fb = rel(a, pat), rel(b, pat)
    if not fa or fa != fb: bad.append("%s: %s vs %s" % (pat, fa, fb)); continue
    for f in fa:
        n_h5 += 1
        da, db = (datasets(h5py.File(os.path.join(r, f), "r")) for r in (a, b))
        if sorted(da) != sorted(db): bad.append("%s: datasets %s vs %s" % (f, sorted(da), sorted(db))); continue
        for k in da:
            x, y = np.asarray(da[k]), np.asarray(db[k])
            if x.shape != y.shape: bad.append("%s/%s: shape %s vs %s" % (f, k, x.shape, y.shape))
            elif x.dtype.kind in "fc":
                if not np.array_equal(x, y, equal_nan=True):
                    bad.append("%s/%s: max |diff| %g" % (f, k, np.nanmax(np.abs(x.astype(float) - y))))
            elif not np.array_equal(x, y): bad.append("%s/%s differs" % (f, k))
print("same: %d files byte-identical, %d HDF5 files equal" % (n_bytes, n_h5) if not bad else "differ: " + "; ".join(bad[:8]))
PYEOF
)
  if [ $direct_rc -eq 0 ] && grep -q '^same: ' <<<"$same"; then
    ok "Slurm pipeline = direct run: ${same#same: } (prepared corpora, selections, mix.csv; probes, mixes, scores)"
  else bad "Slurm vs direct run (direct exit $direct_rc): $same"; tail -n 5 direct.log >&2; fi
  # every stage wrote its own record through the templates (CH_STAGE_TIMING=1), next to the wrappers'
  tim=$($PY - real/timing.jsonl <<'PYEOF' 2>&1
import collections, json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
own = collections.Counter(r["stage"] for r in recs if r.get("source", "stage") != "sbatch")
wrap = [r for r in recs if r.get("source") == "sbatch"]
sel = [r for r in recs if r["stage"] == "select" and "source" not in r]
ok = (own == {"prepare": 9, "extract": 4, "probe": 1, "decompose": 2, "select": 2} and len(wrap) == 18
      and all(r["rc"] == 0 for r in wrap) and all(r["records"] == 300 and r["selected"] == 15 for r in sel)
      and all(isinstance(r["seconds"], (int, float)) and isinstance(r["ranks"], int) for r in recs))
print(("ok " if ok else "bad ") + " ".join("%s:%d" % kv for kv in sorted(own.items())) + ", %d wrapper records" % len(wrap))
PYEOF
)
  grep -q '^ok ' <<<"$tim" && ok "CH_STAGE_TIMING=1: every stage's own record through the templates (${tim#ok })" ||
    bad "stage timing records through Slurm: $tim"

  # 6. scaling study: extract at 1 and 2 ranks; the report's speedup is T(1)/T(2) of the records
  head -n 600 data/q.jsonl >data/q600.jsonl
  bash "$SRC/slurm/scaling.sh" --stage extract --ranks "1 2" --out scal -- --model demo_model \
    --input data/q600.jsonl --output "$dir/scal/{label}.h5" --device cpu >scal.txt 2>scal.err
  want=$($PY - scal/timing/strong-r1-n1-1.jsonl scal/timing/strong-r2-n1-1.jsonl <<'PYEOF' 2>&1
import json, sys
t = [next(r for r in map(json.loads, open(p)) if r.get("source", "stage") != "sbatch")["seconds"] for p in sys.argv[1:]]
print("%.2f %.2f" % (t[0] / t[1], t[0] / t[1] / 2))
PYEOF
)
  got=$(awk '$1 == 2 && $2 == 1 { print $9, $10 }' scal.txt)
  if [ -n "$got" ] && [ "$got" = "$want" ] && grep -q '^    1     1    1       600 ' scal.txt &&
     $PY -c 'import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); assert r.tag.endswith("svg") and len(r.findall(".//{*}circle")) == 2' scal/scaling.svg; then
    ok "scaling.sh: extract at 1, 2 ranks -> table (speedup, efficiency $got) and SVG"
  else bad "scaling report: want '$want' got '$got'"; cat scal.txt scal.err >&2; fi
  cat scal.txt
else
  bad "(5b, 5c, 6) cannot run, missing:$missing"
fi

# 7. a clean shutdown: scontrol shutdown stops slurmctld and slurmd, TERM stops munged, nothing of
# this cluster is left running (its daemons' command lines name the cluster directory)
bash "$SRC/tests/slurm/cluster.sh" down "$dir/cluster" 2>down.err; down_rc=$?
sleep 0.5
left=$(pgrep -a -f -- "$dir/cluster/" 2>/dev/null)
if [ $down_rc -eq 0 ] && [ -z "$left" ] && ! grep -q unclean down.err; then
  ok "cluster down: slurmctld and slurmd stopped on scontrol shutdown, munged on TERM; no daemon left"
else bad "unclean shutdown (cluster.sh down exit $down_rc): $(cat down.err) left: ${left:-none}"; fi

echo "slurm tests: $nfail failed"
[ $nfail -eq 0 ]
