#!/usr/bin/env bash
# Mistral and Gemma 2 / 3 through `capheads extract`, on the tiny golden checkpoints of
# tests/golden/models (made by make_model_golden.py; they have no tokenizer, so the corpus is
# `tokens` records of the golden token ids):
#  - mistral_f32, gemma2_f32, gemma3_f32 at --precision f32 and gemma2_bf16 at auto, --pool last
#    and mean, with --batch-tokens 60 (the 100-token record alone, the short ones packed): the
#    archive is byte-identical on 1 and 3 ranks
#  - its float16 values against transformers' per-head o_proj inputs pooled the same way, max
#    relative error per (record, layer): f32 models <= 2e-3 (binary16 rounding is ~5e-4 of the
#    largest value), gemma2_bf16 against HF's bf16-input contract run (heads_bf16in) <= 6e-3
#    (test_model_golden's 5e-3 for the engine, plus the rounding)
# and `extract --help` names the same architectures as README's model table.
# A window ignored, a cap left out or Gemma's norms taken plain are off by 0.5 to 2 (see
# test_model_golden), far beyond either limit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/ch_archs_XXXXXX)
trap 'rm -rf "$T"' EXIT
# extract --help and README's model table name the same architectures (the parser's one list)
"$CAPHEADS" extract --help | sed -n '/^supported architectures/,/^$/p' | grep -o '^  [A-Za-z0-9]*ForCausalLM' |
  tr -d ' ' >"$T/help.txt"
grep -o '^| `[A-Za-z0-9]*ForCausalLM`' "$CH_SRC/README.md" | tr -d '|` ' >"$T/readme.txt"
[ -s "$T/help.txt" ] && cmp -s <(sort "$T/help.txt") <(sort "$T/readme.txt") ||
  fail "extract --help lists $(tr '\n' ' ' <"$T/help.txt"), README's table $(tr '\n' ' ' <"$T/readme.txt")"
echo "extract --help and README list the same $(wc -l <"$T/help.txt") architectures"
G=$CH_SRC/tests/golden/models
MODELS="mistral_f32 gemma2_f32 gemma3_f32 gemma2_bf16"
for m in $MODELS; do
  /usr/bin/python3 - "$G/$m/expected.safetensors" >"$T/$m.jsonl" <<'PY'
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
for i in range(6):
    h = hdr["tokens.%d" % i]
    a, b = h["data_offsets"]
    ids = np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<i4").tolist()
    print(json.dumps({"id": "seq%d" % i, "tokens": ids}))
PY
  prec=f32
  [ "$m" = gemma2_bf16 ] && prec=auto
  for pool in last mean; do
    for r in 1 3; do # the same command line in another folder (the archive records it)
      mkdir -p "$T/r$r"
      (cd "$T/r$r" && run $r extract --model "$G/$m" --input "../$m.jsonl" --output "$m.$pool.h5" --device cpu \
          --precision $prec --pool $pool --batch-tokens 60 2>"err.txt") || { cat "$T/r$r/err.txt"; fail "$m --pool $pool on $r ranks"; }
    done
    cmp "$T/r1/$m.$pool.h5" "$T/r3/$m.$pool.h5" || fail "$m --pool $pool: the archive of 3 ranks differs from 1 rank's"
  done
done
/usr/bin/python3 - "$T" "$G" $MODELS <<'PY' || fail "per-head outputs differ from transformers'"
import json, struct, sys
import h5py, numpy as np
t, g, models = sys.argv[1], sys.argv[2], sys.argv[3:]
for m in models:
    raw = open("%s/%s/expected.safetensors" % (g, m), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    def tensor(name):
        h = hdr[name]
        a, b = h["data_offsets"]
        return np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(h["shape"]).astype(np.float64)
    ref_name, lim = ("heads_bf16in", 6e-3) if m.endswith("bf16") else ("heads", 2e-3)
    for pool in ("last", "mean"):
        acts = h5py.File("%s/r1/%s.%s.h5" % (t, m, pool), "r")["activations"][:].astype(np.float64)
        worst = 0.0
        for i in range(6):
            ref = tensor("%s.%d" % (ref_name, i))               # [T, L, H, D]
            ref = ref[-1] if pool == "last" else ref.mean(axis=0)
            got = acts[i]
            assert got.shape == ref.shape, (m, got.shape, ref.shape)
            for l in range(ref.shape[0]):
                worst = max(worst, np.abs(got[l] - ref[l]).max() / np.abs(ref[l]).max())
        print("%-12s %-4s archive vs HF %-12s max relative error per layer %.2e (limit %.0e)" % (m, pool, ref_name, worst, lim))
        assert worst <= lim, (m, pool, worst)
PY
echo "PASS"
