#!/usr/bin/env bash
# run_gpu_tests.sh - every check that needs an NVIDIA GPU, in one command (see tests/gpu/README.md).
#   1. build with CUDA (-DCAPHEADS_CUDA=ON) in $CH_GPU_BUILD (default build-gpu)
#   2. test_cuda_backend: each CUDA primitive against the CPU backend, and the whole forward pass
#      on the CUDA backend against the golden files (tests/golden/models); a skip is a failure
#   3. the demo extraction with --device cpu and --device cuda; the archives must agree within
#      bf16 bounds at the default precision, and within f32's at --precision f32
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
build=${CH_GPU_BUILD:-build-gpu}
jobs=$(nproc)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PATH=/usr/local/cuda/bin:$PATH

echo "== GPU"
nvidia-smi -L || { echo "run_gpu_tests: nvidia-smi failed: no usable GPU here" >&2; exit 1; }

echo "== build ($build, CUDA on)"
cmake -S . -B "$build" -DCAPHEADS_CUDA=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$jobs" >/dev/null

echo "== CUDA primitives vs CPU, forward pass vs golden files (test_cuda_backend)"
if [ ! -x "$build/tests/test_cuda_backend" ]; then
  echo "run_gpu_tests: test_cuda_backend was not built (is CUDA on in $build?)" >&2; exit 1
fi
# run directly (ctest would report exit 77 as "skipped", which on a GPU machine is a failure);
# the environment is the one ctest gives it (tests/CMakeLists.txt CH_TEST_ENV)
rc=0
(cd "$build/tests" && CH_SRC="$root" CH_BIN="$(cd "$build" && pwd)" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
  ./test_cuda_backend) || rc=$?
if [ "$rc" = 77 ]; then
  echo "run_gpu_tests: test_cuda_backend skipped on a GPU machine (reason above)" >&2; exit 1
elif [ "$rc" != 0 ]; then
  echo "run_gpu_tests: test_cuda_backend failed (exit $rc)" >&2; exit 1
fi
ctest --test-dir "$build" -R test_cuda_create --output-on-failure

echo "== demo extraction: --device cuda vs --device cpu"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
model=${CH_DEMO_MODEL:-}
corpus=${CH_DEMO_CORPUS:-}
if [ -z "$model" ]; then # the demo model as Hugging Face ships it (as tests/lib.sh ch_demo_model)
  model=$out/model
  mkdir -p "$model"
  cp data/demo/model/config.json data/demo/model/model.safetensors "$model/"
  gzip -dc tests/data/tokenizers/llama3_1/tokenizer.json.gz >"$model/tokenizer.json"
fi
if [ -z "$corpus" ]; then # 60 prepared demo records (as tests/test_extract.sh)
  CAPHEADS="$build/capheads" bash scripts/make-demo-data.sh "$out/data" >/dev/null
  corpus=$out/corpus.jsonl
  { head -n 40 "$out/data/probeset.jsonl"; head -n 10 "$out/data/tasks.jsonl"
    head -n 10 "$out/data/pool.jsonl"; } >"$corpus"
fi
# --device, not CAPHEADS_BACKEND: extract's --device defaults to auto, which ignores the variable
for be in cpu cuda; do
  for prec in auto f32; do
    "$build/capheads" extract --model "$model" --input "$corpus" --output "$out/${be}_$prec.h5" \
      --device "$be" --batch-tokens 700 --precision "$prec"
  done
done
py=${CH_PYTHON:-}
if [ -z "$py" ]; then
  for c in python3 /usr/bin/python3; do
    "$c" -c 'import h5py, numpy' 2>/dev/null && { py=$c; break; }
  done
fi
[ -n "$py" ] || { echo "run_gpu_tests: no python3 with h5py and numpy (set CH_PYTHON)" >&2; exit 1; }
for prec in auto f32; do
"$py" - "$out/cpu_$prec.h5" "$out/cuda_$prec.h5" "$prec" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
prec = sys.argv[3]
want = "bf16" if prec == "auto" else "f32"  # the demo model is bf16
for f in (a, b):
    got = f.attrs["precision"]
    assert (got.decode() if isinstance(got, bytes) else got) == want, (prec, got)
for name in ("ids", "n_tokens", "done", "labels"):
    assert np.array_equal(a[name][()], b[name][()]), f"/{name} differs between cpu and cuda"
x = a["activations"][()].astype(np.float32)
y = b["activations"][()].astype(np.float32)
assert x.shape == y.shape, f"shapes differ: cpu {x.shape}, cuda {y.shape}"
assert np.isfinite(y).all(), "cuda archive holds non-finite values"
# relative L2 error per (row, layer) over all heads (bf16 GEMM operands: ~1e-3 per layer), and
# per (row, layer, head) for information (a head with a tiny norm inflates that one)
n, L = x.shape[0], x.shape[1]
d = (x - y).reshape(n, L, -1)
rel = np.linalg.norm(d, axis=2) / (np.linalg.norm(x.reshape(n, L, -1), axis=2) + 1e-6)
hrel = np.linalg.norm(x - y, axis=3) / (np.linalg.norm(x, axis=3) + 1e-6)
print(f"cpu vs cuda, --precision {prec}: {x.shape}; relative L2 per (row, layer) median {np.median(rel):.2e} "
      f"max {rel.max():.2e}; per head median {np.median(hrel):.2e} max {hrel.max():.2e}")
# auto: both round the Linear inputs to bf16, so they differ by the order of f32 sums and the
# roundings that flips; f32: f32 throughout (no TF32). The bounds were set before any GPU ran
# the f32 comparison (2026-12-03): loosen them only with the printed figures in hand.
assert rel.max() < (5e-2 if prec == "auto" else 1e-3), f"cuda extraction differs from cpu beyond {prec} bounds"
PY
done
echo "run_gpu_tests: all GPU checks passed"
