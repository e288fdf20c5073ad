#!/usr/bin/env bash
# run_gpu_tests.sh - every check that needs an NVIDIA GPU, in one command (see tests/gpu/README.md).
#
#   bash tests/gpu/run_gpu_tests.sh [--bundle DIR] [--out DIR] [--device cuda|cpu]
#
# Where the binaries come from:
#   (default)     build with -DCAPHEADS_CUDA=ON in $CH_GPU_BUILD (default build-gpu); needs cmake
#                 and the Debian packages of scripts/install-deps.sh
#   --bundle DIR  (CH_GPU_BUNDLE=DIR) a build packed by tests/gpu/pack.sh: DIR/env.sh, DIR/bin/...
#                 or its tarball DIR.tar.xz, unpacked next to itself first (with python's tarfile
#                 where the machine has no xz)
#                 The lent GPU machine has the driver, nvcc and a python with torch, transformers,
#                 h5py, numpy, but no cmake, Open MPI or parallel HDF5 and no network to get them.
# --out DIR (CH_GPU_OUT, default gpu-out): run.log, one log per step and results.json (every step's
#   status and seconds, every figure). Only that folder comes back from the GPU machine.
# --device cpu (CH_GPU_DEVICE=cpu): the self-test on a machine without a GPU. Every `--device cuda`
#   becomes cpu, no GPU is required and test_cuda_backend's skip (exit 77) is accepted, so every
#   other step - 2 ranks, resume after SIGKILL, the HF oracle - is proven before device time is spent.
# CH_GPU_DEADLINE (seconds, default 420): no step starts after it and each step's time limit is cut
#   to what is left, so a hang cannot eat the device lease; results.json is written in any case.
# CH_PYTHON: a python with h5py and numpy (and torch + transformers for the HF oracle).
# CH_GPU_STEPS: the steps to run (default: all, in this order):
#   cuda_backend cuda_create demo mpi2 resume hf_oracle
# CH_GPU_KEEP=1 keeps the scratch folder (models, archives).
# Exit 0 only when every step passed. A failing step does not stop the later ones: a GPU run is
# scarce, so it brings back every result it can.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bundle=${CH_GPU_BUNDLE:-} out=${CH_GPU_OUT:-gpu-out} dev=${CH_GPU_DEVICE:-cuda}
while [ $# -gt 0 ]; do
  case $1 in
    --bundle) bundle=$2; shift 2;;
    --out) out=$2; shift 2;;
    --device) dev=$2; shift 2;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0;;
    *) echo "run_gpu_tests: unknown argument '$1' (see --help)" >&2; exit 2;;
  esac
done
case $dev in cuda|cpu) ;; *) echo "run_gpu_tests: --device must be cuda or cpu, got '$dev'" >&2; exit 2;; esac
steps=${CH_GPU_STEPS:-cuda_backend cuda_create demo mpi2 resume hf_oracle}
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out"/*.log "$out"/steps.tsv "$out"/figures.json "$out"/hf_oracle.json "$out"/results.json
exec > >(tee -a "$out/run.log") 2>&1
echo "run_gpu_tests: $(date -u +%FT%TZ) on $(uname -n); device $dev; output in $out"

# python keeps the library path it was started with: a bundle's env.sh puts Debian's libraries
# first, which the GPU machine's torch and h5py wheels were not built against
py_ld=${LD_LIBRARY_PATH:-}
if [ -n "$bundle" ] && [ -f "$bundle" ]; then
  case $bundle in *.tar.xz) ;; *) echo "run_gpu_tests: --bundle takes a folder or a .tar.xz, got $bundle" >&2; exit 2;; esac
  tarball=$bundle bundle=${bundle%.tar.xz}
  echo "== unpack $tarball"
  rm -rf "$bundle"
  tar -C "$(dirname "$tarball")" -xJf "$tarball" 2>/dev/null ||
    python3 -c 'import sys, tarfile as t; t.open(sys.argv[1]).extractall(sys.argv[2], **({"filter": "fully_trusted"} if hasattr(t, "fully_trusted_filter") else {}))' "$tarball" "$(dirname "$tarball")"
fi
if [ -n "$bundle" ]; then
  bundle=$(cd "$bundle" && pwd)
  [ -f "$bundle/env.sh" ] && [ -x "$bundle/bin/capheads" ] ||
    { echo "run_gpu_tests: $bundle is not a gpu-bundle folder (env.sh, bin/capheads)" >&2; exit 1; }
  # shellcheck disable=SC1091
  source "$bundle/env.sh"
  bin=$bundle/bin
  mode="bundle $bundle"
else
  build=${CH_GPU_BUILD:-build-gpu}
  export PATH=/usr/local/cuda/bin:$PATH
  echo "== build ($build, CUDA on)"
  cmake -S . -B "$build" -DCAPHEADS_CUDA=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j "$(nproc)" >/dev/null
  bin=$(cd "$build" && pwd)
  mode="build $bin"
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# shared-memory transport without cross-process memory attach, which containers often forbid
# (ptrace); the archive's bytes do not depend on the transport
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
export SOURCE_DATE_EPOCH=1700000000 # pins the archives' `created`: runs compare byte for byte
work=$(mktemp -d "${TMPDIR:-/tmp}/ch_gpu_XXXXXX")
[ "${CH_GPU_KEEP:-0}" = 1 ] && echo "run_gpu_tests: scratch kept in $work" || trap 'rm -rf "$work"' EXIT

# capheads for python subprocesses: python runs with its own library path, so a bundle's binary is
# reached through a wrapper that sources env.sh first
capheads_py=$bin/capheads
if [ -n "$bundle" ]; then
  capheads_py=$work/capheads
  printf '#!/usr/bin/env bash\nsource "%s/env.sh"\nexec "%s/bin/capheads" "$@"\n' "$bundle" "$bundle" >"$capheads_py"
  chmod +x "$capheads_py"
fi

py=${CH_PYTHON:-}
if [ -z "$py" ]; then
  for c in python3 /usr/bin/python3; do
    LD_LIBRARY_PATH=$py_ld "$c" -c 'import h5py, numpy' 2>/dev/null && { py=$c; break; }
  done
fi
[ -n "$py" ] || { echo "run_gpu_tests: no python3 with h5py and numpy (set CH_PYTHON)" >&2; exit 1; }
export root bin dev work out py py_ld capheads_py
pyrun() { LD_LIBRARY_PATH=$py_ld "$py" "$@"; }
# byte comparison; python where the machine has no cmp (diffutils)
same_bytes() {
  if command -v cmp >/dev/null; then cmp "$1" "$2"
  else pyrun -c 'import filecmp, sys; sys.exit(0 if filecmp.cmp(sys.argv[1], sys.argv[2], shallow=False) else 1)' "$1" "$2"; fi
}
export -f pyrun same_bytes

# results.json: every step's status and seconds and every figure, also when the run stops early
finish() {
  pyrun - "$out" "$dev" "$mode" "$gpu_name" <<'PY' || echo "run_gpu_tests: could not write results.json"
import json, os, sys
out, dev, mode, gpu = sys.argv[1:5]
def load(n):
    p = os.path.join(out, n)
    return json.load(open(p)) if os.path.exists(p) else None
steps = {}
for line in open(os.path.join(out, "steps.tsv")):
    name, status, secs = line.rstrip("\n").split("\t")
    steps[name] = {"status": status, "seconds": int(secs)}
res = {"device": dev, "gpu": gpu, "binaries": mode, "steps": steps,
       "figures": load("figures.json") or {}, "hf_oracle": load("hf_oracle.json"),
       "passed": all(s["status"] == "pass" for s in steps.values())}
json.dump(res, open(os.path.join(out, "results.json"), "w"), indent=1)
PY
  echo "== summary"
  column -t "$out/steps.tsv" 2>/dev/null || cat "$out/steps.tsv"
  if [ "$failed" = 0 ]; then echo "run_gpu_tests: all checks passed (device $dev)"; else echo "run_gpu_tests: FAILED (see $out)"; fi
  exit "$failed"
}

echo "== preflight ($mode)"
"$bin/capheads" --version
command -v mpirun >/dev/null && mpirun --version | head -n1 || echo "run_gpu_tests: no mpirun on PATH"
pyrun -c 'import sys, h5py, numpy; print("python", sys.version.split()[0], "h5py", h5py.__version__, "numpy", numpy.__version__)'
pyrun -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__)' ||
  echo "run_gpu_tests: no torch + transformers in $py: the hf_oracle step will fail"

gpu_name=none failed=0
: >"$out/steps.tsv"
# a failure while setting up (before the steps) still leaves results.json saying where
trap 'echo "run_gpu_tests: set-up failed at line $LINENO"; printf "setup\tfail\t0\n" >>"$out/steps.tsv"; failed=1; trap - ERR; finish' ERR
nogpu() { # everything below needs the GPU: record why and stop
  echo "run_gpu_tests: $1 (--device cpu for the self-test)" >&2
  printf 'gpu\tfail\t0\n' >>"$out/steps.tsv"; failed=1; finish
}
if [ "$dev" = cuda ]; then
  echo "== GPU"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi -L || nogpu "nvidia-smi failed: no usable GPU here"
    gpu_name=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n1)
  elif ls /dev/nvidia0 >/dev/null 2>&1; then
    gpu_name="unknown (no nvidia-smi; /dev/nvidia0 present)"
  else
    nogpu "no nvidia-smi and no /dev/nvidia0: no GPU here"
  fi
  echo "$gpu_name"
fi

echo "== data: the demo model (Llama 3.1 tokenizer), 60 prepared demo records (as tests/test_extract.sh)"
model=${CH_DEMO_MODEL:-}
corpus=${CH_DEMO_CORPUS:-}
if [ -z "$model" ]; then
  model=$work/model
  mkdir -p "$model"
  cp data/demo/model/config.json data/demo/model/model.safetensors "$model/"
  gzip -dc tests/data/tokenizers/llama3_1/tokenizer.json.gz >"$model/tokenizer.json"
fi
if [ -z "$corpus" ]; then
  CAPHEADS="$bin/capheads" bash scripts/make-demo-data.sh "$work/data" >/dev/null
  corpus=$work/corpus.jsonl
  { head -n 40 "$work/data/probeset.jsonl"; head -n 10 "$work/data/tasks.jsonl"
    head -n 10 "$work/data/pool.jsonl"; } >"$corpus"
fi
model=$(cd "$model" && pwd) corpus=$(cd "$(dirname "$corpus")" && pwd)/$(basename "$corpus")
export model corpus
echo "model $model, corpus $corpus ($(wc -l <"$corpus") records)"

# --- the steps (each runs in its own bash under `timeout`, output in $out/<step>.log) ---

# test env as ctest gives it (tests/CMakeLists.txt CH_TEST_ENV)
testenv() { CH_SRC="$root" CH_BIN="$bin" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$@"; }
export -f testenv

# each CUDA primitive against the CPU backend, and the whole forward pass on CUDA against the golden
# files. Run directly: ctest would call exit 77 "skipped", which on a GPU machine is a failure
step_cuda_backend() {
  local rc=0
  (cd "$bin/tests" && testenv ./test_cuda_backend) || rc=$?
  if [ "$rc" = 77 ] && [ "$dev" = cpu ]; then
    echo "test_cuda_backend skipped (exit 77): expected without a GPU (--device cpu)"; return 0
  elif [ "$rc" = 77 ]; then
    echo "run_gpu_tests: test_cuda_backend skipped on a GPU machine (reason above)" >&2; return 1
  fi
  return "$rc"
}
# asking for the CUDA backend: on a GPU it must move data, elsewhere fail cleanly naming why
step_cuda_create() { (cd "$bin/tests" && testenv ./test_cuda_create); }

# the demo extraction on both backends, at both precisions; the archives must agree within bf16
# bounds at the default precision and within f32's at --precision f32
step_demo() {
  local rc=0 be prec
  for be in cpu "$dev"; do
    for prec in auto f32; do
      [ -f "$work/demo_${be}_$prec.h5" ] && continue
      local t0=$SECONDS
      "$bin/capheads" extract --model "$model" --input "$corpus" --output "$work/demo_${be}_$prec.h5" \
        --device "$be" --batch-tokens 700 --precision "$prec" 2>&1 | tail -n 3
      echo "  extract --device $be --precision $prec: $((SECONDS - t0))s"
    done
  done
  for prec in auto f32; do
    pyrun "$root/tests/gpu/compare_archives.py" backends "$work/demo_cpu_$prec.h5" "$work/demo_${dev}_$prec.h5" \
      "$prec" --json "$out/figures.json" --key "demo_cpu_vs_${dev}_$prec" || rc=1
  done
  return $rc
}

# two ranks sharing the one GPU (node-local rank mod visible GPUs) write the archive one rank
# writes, byte for byte: same relative paths, so the recorded command line matches too
step_mpi2() {
  local r t0
  for r in 1 2; do
    mkdir -p "$work/np$r"
    t0=$SECONDS
    (cd "$work/np$r" && ln -sfn "$model" model && ln -sfn "$corpus" corpus.jsonl &&
      mpirun -n "$r" "$bin/capheads" extract --model model --input corpus.jsonl --output acts.h5 \
        --device "$dev" --batch-tokens 700 2>&1 | tail -n 3)
    echo "  $r rank(s): $((SECONDS - t0))s"
  done
  pyrun "$root/tests/gpu/compare_archives.py" same "$work/np1/acts.h5" "$work/np2/acts.h5" \
    --json "$out/figures.json" --key "mpi_1_vs_2_ranks_$dev" || return 1
  same_bytes "$work/np1/acts.h5" "$work/np2/acts.h5" || { echo "FAIL: the 2-rank archive is not byte-identical to 1 rank's"; return 1; }
  echo "2 ranks on one device: byte-identical to 1 rank"
}

# a run killed by SIGKILL after 2 write rounds - the next batch's forward pass queued on the device,
# nothing closed, as a preempted job dies (CAPHEADS_TEST_KILL_AFTER_ROUNDS, src/extract.c) - then
# --resume must give the archive of an uninterrupted run, byte for byte. All three runs are the same
# command (--resume on a missing file starts it), so the recorded command line matches.
step_resume() {
  local d rc=0
  for d in uninterrupted killed; do
    mkdir -p "$work/$d"; ln -sfn "$model" "$work/$d/model"; ln -sfn "$corpus" "$work/$d/corpus.jsonl"
  done
  ext() { "$bin/capheads" extract --model model --input corpus.jsonl --output acts.h5 --device "$dev" \
            --batch-tokens 700 --resume; }
  (cd "$work/uninterrupted" && ext 2>&1 | tail -n 2)
  (cd "$work/killed" && CAPHEADS_SYNC_MIB=0 CAPHEADS_TEST_KILL_AFTER_ROUNDS=2 ext >kill.log 2>&1) || rc=$?
  echo "  killed run: exit $rc (137 = SIGKILL)"
  [ "$rc" = 137 ] || { tail -n 5 "$work/killed/kill.log"; echo "FAIL: the killed run did not die by SIGKILL"; return 1; }
  [ ! -e "$work/killed/acts.h5" ] || { echo "FAIL: the killed run left acts.h5 under its final name"; return 1; }
  pyrun "$root/tests/gpu/compare_archives.py" partial "$work/killed/.acts.h5.partial" \
    --json "$out/figures.json" --key "resume_killed_$dev" || return 1
  "$bin/capheads" inspect "$work/killed/.acts.h5.partial" --verify 2>&1 | tail -n 2 || true
  (cd "$work/killed" && ext 2>&1 | tail -n 2)
  "$bin/capheads" inspect "$work/killed/acts.h5" --verify | tail -n 1
  pyrun "$root/tests/gpu/compare_archives.py" same "$work/uninterrupted/acts.h5" "$work/killed/acts.h5" \
    --json "$out/figures.json" --key "resume_vs_uninterrupted_$dev" || return 1
  same_bytes "$work/uninterrupted/acts.h5" "$work/killed/acts.h5" ||
    { echo "FAIL: killed + resumed archive is not byte-identical to an uninterrupted run"; return 1; }
  echo "killed + resumed: byte-identical to an uninterrupted run"
}

# HF transformers as a second oracle on tiny random Llama and Qwen2 checkpoints made here
step_hf_oracle() {
  pyrun "$root/tests/gpu/hf_oracle.py" --capheads "$capheads_py" --device "$dev" --work "$work/hf" \
    --json "$out/hf_oracle.json"
}
export -f step_cuda_backend step_cuda_create step_demo step_mpi2 step_resume step_hf_oracle

trap - ERR
declare -A cap=([cuda_backend]=200 [cuda_create]=60 [demo]=120 [mpi2]=90 [resume]=120 [hf_oracle]=300)
deadline=$((SECONDS + ${CH_GPU_DEADLINE:-420}))
for s in $steps; do
  [ -n "${cap[$s]:-}" ] || { echo "run_gpu_tests: unknown step '$s'" >&2; exit 2; }
  left=$((deadline - SECONDS))
  if [ "$left" -lt 15 ]; then
    echo "== $s: not started (CH_GPU_DEADLINE reached)"
    printf '%s\tnot_started\t0\n' "$s" >>"$out/steps.tsv"; failed=1; continue
  fi
  lim=${cap[$s]}; [ "$lim" -le "$left" ] || lim=$left
  echo "== $s (limit ${lim}s)"
  t0=$SECONDS rc=0
  timeout -k 10 "$lim" bash -c "set -euo pipefail; step_$s" 2>&1 | tee "$out/$s.log" || rc=$?
  st=pass
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then st=timeout; elif [ "$rc" != 0 ]; then st=fail; fi
  [ "$st" = pass ] || failed=1
  printf '%s\t%s\t%s\n' "$s" "$st" "$((SECONDS - t0))" >>"$out/steps.tsv"
  echo "-- $s: $st ($((SECONDS - t0))s)"
done

finish
