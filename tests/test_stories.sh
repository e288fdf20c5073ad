#!/usr/bin/env bash
# A real trained checkpoint end to end: stories260K (LlamaForCausalLM, f32, SentencePiece
# tokenizer) from the shared folder ($CH_SRC/../shared/data/models/stories260K-hf: config.json +
# model.safetensors) with the committed tokenizer files, through `capheads extract --device cpu
# --precision f32`, at --pool last and mean, against transformers' per-head o_proj inputs
# recorded by tests/golden/make_stories_golden.py (tests/golden/stories/):
#  (a tokenization differing from transformers' - e.g. a missing BOS - fails both limits)
#  - capture_dump (the engine in f32): relative L2 per (text, layer, head) <= 1e-4
#  - the archive (binary16): relative L2 per (text, layer, head) <= 1e-3 (f16 rounding: ~2^-11)
# Skipped (77) when the shared folder is missing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
: "${CH_BIN:?}"
SRCM="$CH_SRC/../shared/data/models/stories260K-hf"
if [ ! -f "$SRCM/model.safetensors" ] || [ ! -f "$SRCM/config.json" ]; then
  echo "SKIP: $SRCM not found"
  exit 77
fi
T=$(mktemp -d /tmp/ch_stories_XXXXXX)
trap 'rm -rf "$T"' EXIT
M=$T/model
mkdir -p "$M"
cp "$SRCM/config.json" "$SRCM/model.safetensors" "$M/"
for f in tokenizer.json tokenizer_config.json; do
  gzip -dc "$CH_SRC/tests/data/tokenizers/stories260k/$f.gz" >"$M/$f"
done
G=$CH_SRC/tests/golden/stories
for pool in last mean; do
  (cd "$T" && "$CAPHEADS" extract --model "$M" --input "$G/corpus.jsonl" --output "$T/$pool.h5" --device cpu \
      --precision f32 --pool $pool 2>"$T/err_$pool.txt") || { cat "$T/err_$pool.txt"; fail "extract --pool $pool"; }
  "$CH_BIN/tests/capture_dump" "$M" "$G/corpus.jsonl" "$T/$pool.f32" $pool f32
done
/usr/bin/python3 - "$T" "$G/expected.safetensors" <<'PY' || fail "stories260K per-head outputs differ from transformers'"
import json, struct, sys
import h5py, numpy as np
t, exp = sys.argv[1], sys.argv[2]
raw = open(exp, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
def tensor(name):
    h = hdr[name]
    dt = {"F32": "<f4", "I32": "<i4"}[h["dtype"]]
    a, b = h["data_offsets"]
    return np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dt).reshape(h["shape"])
for pool in ("last", "mean"):
    ref = tensor(pool).astype(np.float64)                      # [N, L, H, D]
    f = h5py.File("%s/%s.h5" % (t, pool), "r")
    a = f["activations"][:].astype(np.float64)
    assert a.shape == ref.shape, (a.shape, ref.shape)
    dump = np.fromfile("%s/%s.f32" % (t, pool), dtype="<f4").reshape(ref.shape).astype(np.float64)
    def rel(x):
        return np.linalg.norm(x - ref, axis=-1) / np.maximum(np.linalg.norm(ref, axis=-1), 1e-30)
    e_dump, e_arch = rel(dump).max(), rel(a).max()
    print("stories260K %-4s: %d texts, relative L2 per head: engine f32 %.2e (limit 1e-4), archive f16 %.2e (limit 1e-3)"
          % (pool, ref.shape[0], e_dump, e_arch))
    assert e_dump <= 1e-4, "engine f32 vs transformers: %.3g" % e_dump
    assert e_arch <= 1e-3, "archive vs transformers: %.3g" % e_arch
PY
echo "PASS"
