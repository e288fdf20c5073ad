#!/usr/bin/env bash
# The rendering rule and --truncate end to end (issue #18 items 1 and 6), on the demo model with the
# real Llama 3.1 tokenizer:
#  - every rule (plain/chat x prompt/full, cue "Answer:" or none): each row's /n_tokens equals the
#    oracles' count in tests/golden/render_golden.jsonl (tokenizers / apply_chat_template), and each
#    row's activations equal, bit for bit, those of a `tokens` record holding the oracles' ids; the
#    archive records render_template, render_span, render_cue, truncate, n_truncated
#  - --truncate left|right: cut rows have N tokens and the activations of a record given exactly the
#    kept tokens; n_truncated and the stderr line count them; 1 and 2 ranks give the same archive;
#    the limit is min(--max-tokens, the model's window); without --truncate an over-long record is
#    refused (exit 3, file:line and id); --resume refuses another rule or cut
#  - refusals (exit 3, both files and both rules named): probe and decompose of a span-full
#    archive, decompose and select across rules, archives that record no rule; select accepts a
#    span-full pool and says so; probes.h5, mix.h5 and scores.h5 carry the rule
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/ch_render_XXXXXX)
trap 'rm -rf "$T"' EXIT
M=$T/model
ch_demo_model "$M"
CASES=$CH_SRC/tests/golden/render_cases.jsonl
GOLD=$CH_SRC/tests/golden/render_golden.jsonl

echo "== every rule: n_tokens and token ids equal the oracles'"
rules=("plain prompt Answer:" "plain prompt -" "plain full Answer:" "chat prompt -" "chat full -")
for rule in "${rules[@]}"; do
  read -r tpl span cue <<<"$rule"; [ "$cue" = - ] && cue=""
  tag=${tpl}_${span}_${cue:-nocue}
  # the cases, then one `tokens` record per case holding the oracles' ids under this rule
  /usr/bin/python3 - "$CASES" "$GOLD" "$tpl" "$span" "$cue" >"$T/$tag.jsonl" <<'PY'
import json, sys
cases, gold, tpl, span, cue = sys.argv[1:]
lines = open(cases, encoding="utf-8").read().splitlines()
g = {r["id"]: r["ids"] for r in map(json.loads, open(gold)) if r["family"] == "llama3_1"
     and (r["template"], r["span"], r["cue"]) == (tpl, span, cue)}
assert len(g) == len(lines), (len(g), len(lines))
print("\n".join(lines))
for l in lines:
    i = json.loads(l)["id"]
    print(json.dumps({"id": i + "#tokens", "tokens": g[i]}))
PY
  "$CAPHEADS" extract --model "$M" --input "$T/$tag.jsonl" --output "$T/$tag.h5" --device cpu --batch-tokens 1 \
    --template "$tpl" --span "$span" --cue "$cue" 2>"$T/$tag.err" || { cat "$T/$tag.err"; fail "extract $rule"; }
  /usr/bin/python3 - "$T/$tag.h5" "$GOLD" "$tpl" "$span" "$cue" <<'PY' || fail "rule $tpl/$span/'$cue' differs from the oracles"
import json, sys, h5py, numpy as np
path, gold, tpl, span, cue = sys.argv[1:]
g = {r["id"]: len(r["ids"]) for r in map(json.loads, open(gold)) if r["family"] == "llama3_1"
     and (r["template"], r["span"], r["cue"]) == (tpl, span, cue)}
f = h5py.File(path, "r")
s = lambda k: f.attrs[k].decode() if isinstance(f.attrs[k], bytes) else str(f.attrs[k])
assert (s("render_template"), s("render_span"), s("render_cue")) == (tpl, span, "" if tpl == "chat" else cue)
assert s("truncate") == "none" and int(f.attrs["n_truncated"]) == 0
ids = [i.decode() for i in f["ids"][:]]
nt, acts = f["n_tokens"][:], f["activations"][:].view(np.uint16)
row = {i: k for k, i in enumerate(ids)}
for i, n in g.items():
    assert nt[row[i]] == n, (i, nt[row[i]], n)
    assert (acts[row[i]] == acts[row[i + "#tokens"]]).all(), f"{i}: activations differ from the oracle's ids"
print("  %s/%s cue '%s': %d records, n_tokens %s, ids equal the oracles'" % (tpl, span, cue, len(g),
      [int(nt[row[i]]) for i in sorted(g)]))
PY
done

echo "== --truncate left|right"
N=12
# the cases under the default rule, and the kept tokens of each as a `tokens` record
/usr/bin/python3 - "$CASES" "$GOLD" "$N" "$T/left.jsonl" "$T/right.jsonl" <<'PY'
import json, sys
cases, gold, n, lp, rp = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
lines = open(cases, encoding="utf-8").read().splitlines()
g = {r["id"]: r["ids"] for r in map(json.loads, open(gold)) if r["family"] == "llama3_1"
     and (r["template"], r["span"], r["cue"]) == ("plain", "prompt", "Answer:")}
BOS = 128000  # <|begin_of_text|>: --truncate left keeps it and the last n - 1 tokens
left = lambda t: t if len(t) <= n else t[:1] + t[-(n - 1):] if t[0] == BOS else t[-n:]
for path, keep in ((lp, left), (rp, lambda t: t[:n])):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
        for l in lines:
            i = json.loads(l)["id"]
            f.write(json.dumps({"id": i + "#kept", "tokens": keep(g[i])}) + "\n")
PY
for side in left right; do
  for r in 1 2; do
    mkdir -p "$T/tr$r"
    (cd "$T/tr$r" && run $r extract --model ../model --input ../$side.jsonl --output $side.h5 --device cpu \
        --batch-tokens 1 --max-tokens $N --truncate $side 2>"$side.err") || { cat "$T/tr$r/$side.err"; fail "--truncate $side on $r rank(s)"; }
  done
  cmp "$T/tr1/$side.h5" "$T/tr2/$side.h5" || fail "--truncate $side: the archive of 2 ranks differs from 1 rank's"
  grep "cut" "$T/tr1/$side.err" | sed 's/^/  /'
  /usr/bin/python3 - "$T/tr1/$side.h5" "$GOLD" "$N" "$side" "$T/tr1/$side.err" <<'PY' || fail "--truncate $side"
import json, sys, h5py, numpy as np
path, gold, n, side, err = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
g = {r["id"]: len(r["ids"]) for r in map(json.loads, open(gold)) if r["family"] == "llama3_1"
     and (r["template"], r["span"], r["cue"]) == ("plain", "prompt", "Answer:")}
f = h5py.File(path, "r")
ids = [i.decode() for i in f["ids"][:]]
row = {i: k for k, i in enumerate(ids)}
nt, acts = f["n_tokens"][:], f["activations"][:].view(np.uint16)
cut = sorted(i for i, k in g.items() if k > n)
assert 0 < len(cut) < len(g), cut
for i, k in g.items():
    assert nt[row[i]] == min(k, n), (i, nt[row[i]], k)
    assert (acts[row[i]] == acts[row[i + "#kept"]]).all(), f"{i}: not the activations of its kept tokens"
a = lambda k: f.attrs[k].decode() if isinstance(f.attrs[k], bytes) else f.attrs[k]
assert a("truncate") == side and int(a("n_truncated")) == len(cut), (a("truncate"), a("n_truncated"), len(cut))
e = open(err).read()
assert "--truncate %s cut %d record(s) to %d tokens" % (side, len(cut), n) in e, e
order = [i for i in ids if i in cut]  # file order
assert "'%s'" % order[0] in e, e
print("  %s: %d of %d records cut to %d tokens, each equal to its kept tokens given as `tokens`" % (side, len(cut), len(g), n))
PY
done
"$CAPHEADS" inspect "$T/tr1/left.h5" | grep -q 'rendering  template plain, span prompt, cue "Answer:"; truncate left (6 record(s) cut)' \
  || fail "inspect does not show the rule and the cut"
# the limit is min(--max-tokens, the model's window): a window of N cuts as --max-tokens N does
mkdir -p "$T/win"
cp "$M/model.safetensors" "$M/tokenizer.json" "$T/win/"
sed 's/"max_position_embeddings": 131072/"max_position_embeddings": '$N'/' "$M/config.json" >"$T/win/config.json"
"$CAPHEADS" extract --model "$T/win" --input "$T/left.jsonl" --output "$T/win.h5" --device cpu --batch-tokens 1 \
  --truncate left 2>/dev/null || fail "--truncate left under a window of $N"
h5diff -d 0 "$T/tr1/left.h5" "$T/win.h5" /activations >/dev/null || fail "a window of $N does not cut as --max-tokens $N"
h5diff "$T/tr1/left.h5" "$T/win.h5" /n_tokens >/dev/null || fail "a window of $N: n_tokens differ"
echo "  a window of $N cuts as --max-tokens $N"
expect_fail "over-long record without --truncate" "left.jsonl:2: record 'pool_multi' has 18 tokens, more than --max-tokens $N" \
  "$CAPHEADS" extract --model "$M" --input "$T/left.jsonl" --output "$T/no.h5" --device cpu --max-tokens $N
set +e; "$CAPHEADS" extract --model "$M" --input "$T/left.jsonl" --output "$T/no.h5" --device cpu --max-tokens $N >/dev/null 2>&1; rc=$?; set -e
[ $rc -eq 3 ] || fail "an over-long record without --truncate: exit $rc, expected 3"
[ ! -e "$T/no.h5" ] || fail "an archive was left for an over-long record"
expect_fail "resume with another --truncate" "written with --truncate left but this run has --truncate right" \
  "$CAPHEADS" extract --model "$M" --input "$T/left.jsonl" --output "$T/tr1/left.h5" --device cpu --batch-tokens 1 \
  --max-tokens $N --truncate right --resume
expect_fail "resume with another --max-tokens under --truncate" "written with --max-tokens $N but this run has --max-tokens 13" \
  "$CAPHEADS" extract --model "$M" --input "$T/left.jsonl" --output "$T/tr1/left.h5" --device cpu --batch-tokens 1 \
  --max-tokens 13 --truncate left --resume
expect_fail "resume with another rule" "rendered with template plain, span prompt, cue \"Answer:\" but this run renders with template chat" \
  "$CAPHEADS" extract --model "$M" --input "$T/left.jsonl" --output "$T/tr1/left.h5" --device cpu --batch-tokens 1 \
  --max-tokens $N --truncate left --template chat --resume

echo "== probe, decompose and select check the rule"
CAPHEADS=$CAPHEADS bash "$CH_SRC/scripts/make-demo-data.sh" "$T/data" >/dev/null
head -n 120 "$T/data/probeset.jsonl" >"$T/probeset.jsonl"
head -n 40 "$T/data/tasks.jsonl" >"$T/tasks.jsonl"
head -n 40 "$T/data/pool.jsonl" >"$T/pool.jsonl"
x() { "$CAPHEADS" extract --model "$M" --device cpu "$@" 2>/dev/null || fail "extract $*"; }
x --input "$T/probeset.jsonl" --output "$T/probeset.h5"
x --input "$T/probeset.jsonl" --output "$T/probeset_full.h5" --span full
x --input "$T/tasks.jsonl" --output "$T/tasks.h5"
x --input "$T/tasks.jsonl" --output "$T/tasks_chat.h5" --template chat
x --input "$T/tasks.jsonl" --output "$T/tasks_full.h5" --span full
x --input "$T/pool.jsonl" --output "$T/pool.h5"
x --input "$T/pool.jsonl" --output "$T/pool_chat.h5" --template chat
x --input "$T/pool.jsonl" --output "$T/pool_nocue.h5" --cue ""
x --input "$T/pool.jsonl" --output "$T/pool_full.h5" --span full
for a in tasks pool; do
  cp "$T/$a.h5" "$T/${a}_old.h5"
  /usr/bin/python3 -c 'import sys, h5py
f = h5py.File(sys.argv[1], "r+")
for k in ("render_template", "render_span", "render_cue"): del f.attrs[k]' "$T/${a}_old.h5"
done
"$CAPHEADS" probe --input "$T/probeset.h5" --output "$T/probes.h5" --top-k 4 >/dev/null 2>&1 || fail "probe"
expect_fail "probe of a span-full archive" "probing archive $T/probeset_full.h5 was extracted with template plain, span full" \
  "$CAPHEADS" probe --input "$T/probeset_full.h5" --output "$T/probes_full.h5" --top-k 4
expect_fail "decompose of a span-full tasks archive" "tasks archive $T/tasks_full.h5 was extracted with template plain, span full" \
  "$CAPHEADS" decompose --probes "$T/probes.h5" --input "$T/tasks_full.h5" --output "$T/mix_full"
expect_fail "decompose across templates" "the probe file $T/probes.h5 was made with template plain, span prompt, cue \"Answer:\" but the tasks archive $T/tasks_chat.h5 with template chat, span prompt, cue \"\"" \
  "$CAPHEADS" decompose --probes "$T/probes.h5" --input "$T/tasks_chat.h5" --output "$T/mix_chat"
expect_fail "decompose of an archive without a rule" "tasks archive $T/tasks_old.h5: no render rule recorded: re-extract" \
  "$CAPHEADS" decompose --probes "$T/probes.h5" --input "$T/tasks_old.h5" --output "$T/mix_old"
"$CAPHEADS" decompose --probes "$T/probes.h5" --input "$T/tasks.h5" --output "$T/mix" >/dev/null || fail "decompose"
sel() { "$CAPHEADS" select --probes "$T/probes.h5" --mix "$T/mix" --pool "$T/pool.jsonl" --fraction 0.1 "$@"; }
expect_fail "select across templates" "the mix $T/mix was made with template plain, span prompt, cue \"Answer:\" but the pool archive $T/pool_chat.h5 with template chat" \
  sel --input "$T/pool_chat.h5" --output "$T/sel_chat"
expect_fail "select across cues" "render rules differ (cue)" sel --input "$T/pool_nocue.h5" --output "$T/sel_nocue"
expect_fail "select --method random across templates" "the pool archive $T/pool_chat.h5 with template chat" \
  sel --input "$T/pool_chat.h5" --output "$T/sel_chat_r" --method random
expect_fail "select of a pool without a rule" "pool archive $T/pool_old.h5: no render rule recorded: re-extract" \
  sel --input "$T/pool_old.h5" --output "$T/sel_old"
set +e; sel --input "$T/pool_chat.h5" --output "$T/sel_chat" >/dev/null 2>&1; rc=$?; set -e
[ $rc -eq 3 ] || fail "select across templates: exit $rc, expected 3 (as for a mix of other probes)"
sel --input "$T/pool.h5" --output "$T/sel" >/dev/null 2>"$T/sel.err" || { cat "$T/sel.err"; fail "select"; }
sel --input "$T/pool_full.h5" --output "$T/sel_full" >/dev/null 2>"$T/sel_full.err" || { cat "$T/sel_full.err"; fail "select of a span-full pool"; }
grep -q "extracted with --span full (prompt and response): an ablation" "$T/sel_full.err" || fail "select does not say a span-full pool is an ablation"
/usr/bin/python3 - "$T" <<'PY' || fail "the rule in probes.h5, mix.h5 and scores.h5"
import sys, h5py
t = sys.argv[1]
def rule(p):
    f = h5py.File(p, "r")
    return tuple(f.attrs[k].decode() if isinstance(f.attrs[k], bytes) else f.attrs[k]
                 for k in ("render_template", "render_span", "render_cue"))
want = ("plain", "prompt", "Answer:")
for p in ("probes.h5", "mix/mix.h5", "sel/scores.h5"):
    assert rule(f"{t}/{p}") == want, (p, rule(f"{t}/{p}"))
assert rule(f"{t}/sel_full/scores.h5") == ("plain", "full", "Answer:")
print("  probes.h5, mix.h5 and scores.h5 record the rule of their input")
PY
echo "test_render: all checks passed"
