#!/usr/bin/env bash
# Every stage's outputs under attack (docs/faults.md, "Every stage's outputs"). Each case ends
# with a clear error and the documented exit code, or with outputs equal to an uninterrupted
# run's - never with a file under a final name that claims to be complete and is not.
#  - kill -9 (CAPHEADS_TEST_KILL_AT, io/outpath.h) of prepare, extract, probe, decompose and
#    select at three points each - after start, part-way through the writing (a seeded random
#    record, write round or task), just before the rename - on a seeded random rank count:
#    nothing under the final names; rerun as it was (extract with --resume, a stage whose
#    output directory holds finished side files with --force) equals the uninterrupted run
#  - a full file system (a small tmpfs) for each output kind - archive, probes.h5, mix.h5,
#    scores.h5, a selected JSONL, prepare's JSONL - under an earlier complete output replaced
#    with --force: a clear error, the earlier output byte for byte as it was, no partial file
#  - a second run of probe, decompose or select on an output another live run holds: exit 6
#    naming the holder, nothing written; a killed run's stale lock is taken over
#  - flipped bits in probes.h5, mix.h5 and scores.h5: anywhere in the file (the seal block, HDF5's
#    structures, the data), inspect --verify and the stage that reads the file exit 3 naming the
#    file before HDF5 parses it; without the user block (h5unjam), a flip in a dataset's bytes is
#    named by the dataset (the content seal)
# The seed is printed; CH_FAULTS_SEED=N reruns the same points.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/ch_faults_stages_XXXXXX)
holder=
trap 'umount "$T/full" 2>/dev/null || true; [ -z "$holder" ] || kill "$holder" 2>/dev/null || true; rm -rf "$T"' EXIT
SEED=${CH_FAULTS_SEED:-$(($(date +%s) % 100000))}
echo "seed $SEED (CH_FAULTS_SEED=$SEED reruns these points)"
RANDOM=$SEED
PY=/usr/bin/python3
M=$T/model
ch_demo_model "$M"
CAPHEADS=$CAPHEADS bash "$CH_SRC/scripts/make-demo-data.sh" "$T/data" >/dev/null
D=$T/data
head -n 30 "$D/probeset.jsonl" >"$T/corpus.jsonl"
mkdir -p "$T/pool" "$T/ref" "$T/k"
cp "$D/pool.jsonl" "$T/pool/pool.jsonl"
PREP_SRC=$CH_SRC/data/demo/gsm8k/test.jsonl
X=(extract --model "$M" --device cpu --batch-tokens 200)
ranks() { echo $((1 + RANDOM % ${1:-2})); } # CI has 2 cores: more ranks than that crawl (busy polling)

# same_h5 A B: every dataset byte for byte, every attribute equal, except the root attributes
# that name their own command line and time (and content_sha256, which covers them)
same_h5() {
  $PY - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
skip = {"command_line", "created", "content_sha256"}
def names(f):
    out = []
    f.visititems(lambda n, o: out.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(out)
assert names(a) == names(b), (names(a), names(b))
for n in names(a):
    assert a[n][()].tobytes() == b[n][()].tobytes(), n
    assert sorted(a[n].attrs) == sorted(b[n].attrs), n
    for k in a[n].attrs:
        if k not in ("DIMENSION_LIST", "REFERENCE_LIST"):  # object references: per file
            assert np.array_equal(a[n].attrs[k], b[n].attrs[k]), (n, k)
ka, kb = sorted(set(a.attrs) - skip), sorted(set(b.attrs) - skip)
assert ka == kb, (ka, kb)
for k in ka:
    assert np.array_equal(a.attrs[k], b.attrs[k]), k
PY
}
# killed POINT cmd...: the command dies by SIGKILL at POINT (not a clean exit)
killed() {
  local point=$1; shift
  set +e; (CAPHEADS_TEST_KILL_AT=$point CAPHEADS_SYNC_MIB=0 "$@"; exit $?) >"$T/out.txt" 2>&1; local rc=$?; set -e
  [ $rc -ne 0 ] || { cat "$T/out.txt"; fail "killed at $point: the run exited 0"; }
}
# rerun cmd...: the run again as it was; a refusal for finished side files left in an output
# directory (exit 2, "add --force") is followed by the same run with --force
rerun() {
  set +e; "$@" >"$T/out.txt" 2>&1; local rc=$?; set -e
  if [ $rc -eq 2 ] && grep -q "add --force" "$T/out.txt"; then
    "$@" --force >"$T/out.txt" 2>&1 || { cat "$T/out.txt"; fail "rerun with --force failed"; }
    echo -n " (rerun needed --force: $(grep -o -- '--[a-z]* [^ ]* exists' "$T/out.txt" | head -1)finished side files)"
  elif [ $rc -ne 0 ]; then
    cat "$T/out.txt"; fail "rerun failed (exit $rc)"
  fi
}
# none_final PATH...: no file under these final names
none_final() { for p in "$@"; do [ ! -e "$p" ] || fail "a killed run left $p under its final name"; done; }

echo "== uninterrupted runs"
"$CAPHEADS" prepare gsm8k "$PREP_SRC" --output "$T/ref/prep.jsonl" >/dev/null 2>&1
run 2 "${X[@]}" --input "$T/corpus.jsonl" --output "$T/ref/acts.h5" 2>/dev/null
run 2 "${X[@]}" --input "$D/tasks.jsonl" --output "$T/tasks.h5" 2>/dev/null
run 2 "${X[@]}" --input "$T/pool/pool.jsonl" --output "$T/pool.h5" 2>/dev/null
run 2 probe --input "$T/ref/acts.h5" --output "$T/ref/p.h5" --top-k 4 --heatmap "$T/ref/hm" >/dev/null
run 2 decompose --probes "$T/ref/p.h5" --input "$T/tasks.h5" --output "$T/ref/mix" >/dev/null
SEL=(select --probes "$T/ref/p.h5" --mix "$T/ref/mix" --input "$T/pool.h5" --pool "$T/pool/pool.jsonl")
run 2 "${SEL[@]}" --output "$T/ref/sel" >/dev/null
ntasks=$(ls "$T/ref/sel"/*.jsonl | wc -l)
for f in "$T/ref/p.h5" "$T/ref/mix/mix.h5" "$T/ref/sel/scores.h5"; do
  $PY "$CH_SRC/tests/tools/h5seal.py" check "$f" >/dev/null || fail "$f: h5py's checksums differ from the stored ones"
done
echo "  h5py recomputes the stored content checksums of probes.h5, mix.h5 and scores.h5"

echo "== kill -9 at three points of every stage, then the rerun"
for point in start "write:$((1 + RANDOM % 40))" publish; do
  rm -rf "$T/k"/*
  killed "$point" "$CAPHEADS" prepare gsm8k "$PREP_SRC" --output "$T/k/prep.jsonl"
  none_final "$T/k/prep.jsonl"
  echo -n "  prepare killed at $point: nothing under the final name"
  rerun "$CAPHEADS" prepare gsm8k "$PREP_SRC" --output "$T/k/prep.jsonl"
  cmp "$T/ref/prep.jsonl" "$T/k/prep.jsonl" || fail "prepare: rerun after a kill at $point differs"
  echo "; rerun byte-identical"
done
for point in start "write:$((1 + RANDOM % 2))" publish; do
  rm -rf "$T/k"/*
  r=$(ranks 3) r2=$(ranks 3)
  killed "$point" run "$r" "${X[@]}" --input "$T/corpus.jsonl" --output "$T/k/acts.h5"
  none_final "$T/k/acts.h5"
  [ "$point" = start ] || [ -e "$T/k/.acts.h5.partial" ] || fail "extract killed at $point left no partial archive to resume"
  echo -n "  extract killed at $point on $r rank(s): nothing under the final name"
  rerun run "$r2" "${X[@]}" --input "$T/corpus.jsonl" --output "$T/k/acts.h5" --resume
  same_h5 "$T/ref/acts.h5" "$T/k/acts.h5" || fail "extract: resumed archive after a kill at $point differs"
  [ ! -e "$T/k/.acts.h5.partial" ] || fail "extract: the partial archive is still there after the resume"
  echo "; --resume on $r2 rank(s) equal to the uninterrupted run"
done
for point in start write publish; do
  rm -rf "$T/k"/*
  r=$(ranks)
  killed "$point" run "$r" probe --input "$T/ref/acts.h5" --output "$T/k/p.h5" --top-k 4 --heatmap "$T/k/hm"
  none_final "$T/k/p.h5"
  echo -n "  probe killed at $point on $r rank(s): no probes.h5"
  rerun run "$r" probe --input "$T/ref/acts.h5" --output "$T/k/p.h5" --top-k 4 --heatmap "$T/k/hm"
  same_h5 "$T/ref/p.h5" "$T/k/p.h5" || fail "probe: rerun after a kill at $point differs"
  for f in "$T/ref/hm"/*; do cmp "$f" "$T/k/hm/$(basename "$f")" || fail "probe: heatmap $(basename "$f") differs"; done
  echo "; rerun equal"
done
for point in start write publish; do
  rm -rf "$T/k"/*
  r=$(ranks)
  killed "$point" run "$r" decompose --probes "$T/ref/p.h5" --input "$T/tasks.h5" --output "$T/k/mix"
  none_final "$T/k/mix/mix.h5"
  echo -n "  decompose killed at $point on $r rank(s): no mix.h5"
  rerun run "$r" decompose --probes "$T/ref/p.h5" --input "$T/tasks.h5" --output "$T/k/mix"
  same_h5 "$T/ref/mix/mix.h5" "$T/k/mix/mix.h5" || fail "decompose: rerun after a kill at $point differs"
  cmp "$T/ref/mix/mix.csv" "$T/k/mix/mix.csv" || fail "decompose: mix.csv differs"
  echo "; rerun equal"
done
for point in start "write:$((1 + RANDOM % ntasks))" publish; do
  rm -rf "$T/k"/*
  r=$(ranks)
  killed "$point" run "$r" "${SEL[@]}" --output "$T/k/sel"
  none_final "$T/k/sel/scores.h5"
  ! ls "$T/k/sel"/*.jsonl >/dev/null 2>&1 || fail "select killed at $point published part of a selection"
  echo -n "  select killed at $point on $r rank(s): no scores.h5, no JSONL"
  rerun run "$r" "${SEL[@]}" --output "$T/k/sel"
  same_h5 "$T/ref/sel/scores.h5" "$T/k/sel/scores.h5" || fail "select: rerun after a kill at $point differs"
  for f in "$T/ref/sel"/*.jsonl; do cmp "$f" "$T/k/sel/$(basename "$f")" || fail "select: $(basename "$f") differs"; done
  [ -z "$(ls -A "$T/k/sel" | grep partial)" ] || fail "select: partial files left after the rerun"
  echo "; rerun equal"
done

echo "== a full file system for each output kind"
mkdir -p "$T/full"
if mount -t tmpfs -o size=2m tmpfs "$T/full" 2>/dev/null; then
  umount "$T/full"
  # full_case NAME FREE_KB OLD OUT PATTERN cmd...: OLD (an earlier complete output) copied to
  # OUT on a fresh small tmpfs filled up to FREE_KB free; cmd (run with --force) must fail
  # with PATTERN and leave OUT as it was and no partial file
  full_case() {
    local name=$1 free=$2 old=$3 out=$4 pat=$5; shift 5
    mount -t tmpfs -o size=2m tmpfs "$T/full"
    cp -r "$old" "$out"
    local avail
    avail=$(df -B1 --output=avail "$T/full" | tail -n 1)
    dd if=/dev/zero of="$T/full/filler" bs=4096 count=$(((avail - free * 1024) / 4096)) status=none
    local before
    before=$(cd "$T/full" && find . -type f ! -name filler | sort | xargs sha256sum)
    set +e; "$@" --force >"$T/out.txt" 2>&1; local rc=$?; set -e
    [ $rc -ne 0 ] || { cat "$T/out.txt"; umount "$T/full"; fail "$name: exit 0 on a full file system"; }
    grep -aq -- "$pat" "$T/out.txt" || { cat "$T/out.txt"; umount "$T/full"; fail "$name: message lacks '$pat'"; }
    local after
    after=$(cd "$T/full" && find . -type f ! -name filler | sort | xargs sha256sum)
    [ "$before" = "$after" ] || { echo "$after"; umount "$T/full"; fail "$name: the earlier output changed or a file was left"; }
    echo "  $name ($free KiB free): exit $rc: $(grep -a -m1 -- "$pat" "$T/out.txt" | sed "s|$T|T|g" | cut -c1-150)"
    umount "$T/full"
  }
  full_case "archive" 8 "$T/ref/acts.h5" "$T/full/acts.h5" "not enough space" \
    run 2 "${X[@]}" --input "$T/corpus.jsonl" --output "$T/full/acts.h5"
  full_case "probes.h5" 4 "$T/ref/p.h5" "$T/full/p.h5" "p.h5.partial: write failed: No space left on device" \
    run 2 probe --input "$T/ref/acts.h5" --output "$T/full/p.h5" --top-k 4
  full_case "mix.h5" 4 "$T/ref/mix" "$T/full/mix" "mix.h5.partial: write failed: No space left on device" \
    run 2 decompose --probes "$T/ref/p.h5" --input "$T/tasks.h5" --output "$T/full/mix"
  full_case "scores.h5" 4 "$T/ref/sel" "$T/full/sel" "scores.h5.partial: not enough space" \
    run 2 "${SEL[@]}" --output "$T/full/sel"
  # room for scores.h5 (what select said it needs) and 2 KiB more: less than the first selection's
  # lines, so the first JSONL is the output refused
  need=$(grep -a -m1 -o "needs about [0-9.]* KiB" "$T/out.txt" | grep -o "[0-9.]*" | head -1)
  [ -n "$need" ] || fail "scores.h5: select did not say how much room it needs"
  full_case "selected JSONL" $(( ${need%.*} + 3 )) "$T/ref/sel" "$T/full/sel" "jsonl.partial: not enough space" \
    run 2 "${SEL[@]}" --output "$T/full/sel"
  full_case "prepare JSONL" 4 "$T/ref/prep.jsonl" "$T/full/prep.jsonl" "write failed: No space left on device" \
    "$CAPHEADS" prepare gsm8k "$PREP_SRC" --output "$T/full/prep.jsonl"
else
  echo "  full file system: skipped (cannot mount a small tmpfs here: needs root in the container)"
fi

echo "== flipped bits in probes.h5, mix.h5, scores.h5"
# flip FILE OFFSET: one bit of a copy, FILE.flip.h5
flip() {
  cp "$1" "$1.flip.h5"
  $PY -c "
import sys; p, at = sys.argv[1], int(sys.argv[2])
with open(p, 'r+b') as f:
    f.seek(at); b = f.read(1); f.seek(at); f.write(bytes([b[0] ^ (1 << (at % 8))]))" "$1.flip.h5" "$2"
}
# the data bytes of each dataset (all contiguous) from h5py, one "name offset size" a line
ranges() {
  $PY - "$1" <<'PY'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
def show(name, o):
    if isinstance(o, h5py.Dataset) and o.id.get_storage_size():
        print(name, o.id.get_offset(), o.id.get_storage_size())
f.visititems(show)
PY
}
rm -rf "$T/k"/* && cp "$T/ref/p.h5" "$T/k/p.h5" && cp -r "$T/ref/mix" "$T/k/mix" && cp -r "$T/ref/sel" "$T/k/sel"
SEALMSG="its bytes do not match the SHA-256 in its first 512 bytes"
# verify FILE: inspect --verify on it; rc and output in $rc and $T/out.txt
verify() { set +e; "$CAPHEADS" inspect "$1" --verify >"$T/out.txt" 2>&1; rc=$?; set -e; }
# Every byte is under the file seal, HDF5's own structures included: a flip anywhere is refused
# before HDF5 parses the file (a damaged object header made HDF5 1.10 read past its buffer).
for f in "$T/k/p.h5" "$T/k/mix/mix.h5" "$T/k/sel/scores.h5"; do
  kind=$(basename "$f") size=$(stat -c %s "$f")
  verify "$f"
  [ $rc -eq 0 ] && grep -q "verify: the file seal (SHA-256 of every byte after its first 512) holds; every dataset" "$T/out.txt" ||
    { cat "$T/out.txt"; fail "$kind intact: inspect --verify exit $rc, or it did not say both seals hold"; }
  for at in 0 40 511 512 $((size - 1)) $(for i in $(seq 12); do echo $(((RANDOM * 32768 + RANDOM) % size)); done); do
    flip "$f" "$at"
    verify "$f.flip.h5"
    [ $rc -eq 3 ] && grep -q "$kind.flip.h5: \($SEALMSG\|neither an HDF5 file nor a sealed capheads file\)" "$T/out.txt" ||
      { cat "$T/out.txt"; fail "$kind: a flip at byte $at: inspect --verify exit $rc (expected 3 naming the file)"; }
    ! $PY "$CH_SRC/tests/tools/h5seal.py" check "$f.flip.h5" >/dev/null 2>&1 || fail "$kind: flip at $at: h5py's check passed it"
  done
  echo "  $kind: a bit flipped at bytes 0, 40, 511, 512, the last and 12 random offsets: inspect --verify exit 3 naming the file, before HDF5 reads it"
done
# Without the user block (h5unjam) the content seal alone is checked, and a flip in a dataset's
# data is named by the dataset.
for f in "$T/k/p.h5" "$T/k/mix/mix.h5" "$T/k/sel/scores.h5"; do
  kind=$(basename "$f")
  h5unjam -i "$f" -o "$f.unjam.h5" >/dev/null
  verify "$f.unjam.h5"
  [ $rc -eq 0 ] && grep -q "verify: no file seal (a copy without its first 512 bytes); every dataset" "$T/out.txt" ||
    { cat "$T/out.txt"; fail "$kind without its user block: inspect --verify exit $rc, or it claimed a file seal"; }
  ranges "$f.unjam.h5" >"$T/ranges.txt"
  while read -r -u 3 name off size; do
    at=$((off + (RANDOM * 32768 + RANDOM) % size))
    flip "$f.unjam.h5" "$at"
    verify "$f.unjam.h5.flip.h5"
    [ $rc -eq 3 ] && grep -q "$kind.unjam.h5.flip.h5: dataset /$name does not match its stored SHA-256" "$T/out.txt" ||
      { cat "$T/out.txt"; fail "$kind (no user block): a flip in /$name at byte $at: inspect --verify exit $rc"; }
  done 3<"$T/ranges.txt"
  echo "  $kind without its user block: a bit flipped in each of its $(wc -l <"$T/ranges.txt") datasets: exit 3 naming the dataset"
done
# the stages that read them: decompose reads probes.h5, select reads probes.h5 and mix.h5
read -r name off size < <(ranges "$T/k/p.h5" | grep '^weights ')
flip "$T/k/p.h5" $((off + RANDOM % size))
set +e; run 2 decompose --probes "$T/k/p.h5.flip.h5" --input "$T/tasks.h5" --output "$T/k/mix_flip" >"$T/out.txt" 2>&1; rc=$?; set -e
[ $rc -eq 3 ] && grep -q "p.h5.flip.h5: $SEALMSG" "$T/out.txt" || { cat "$T/out.txt"; fail "decompose on flipped probes: exit $rc"; }
[ ! -e "$T/k/mix_flip/mix.h5" ] || fail "decompose left a mix after reading flipped probes"
echo "  decompose on probes.h5 with a flipped /weights bit: exit 3 naming the file, no output"
read -r name off size < <(ranges "$T/k/mix/mix.h5" | grep '^mix ')
mkdir -p "$T/k/mixf" && cp "$T/k/mix/mix.h5" "$T/k/mixf/mix.h5" && flip "$T/k/mixf/mix.h5" $((off + RANDOM % size))
mv "$T/k/mixf/mix.h5.flip.h5" "$T/k/mixf/mix.h5"
set +e; run 2 select --probes "$T/ref/p.h5" --mix "$T/k/mixf" --input "$T/pool.h5" --pool "$T/pool/pool.jsonl" \
  --output "$T/k/sel_flip" >"$T/out.txt" 2>&1; rc=$?; set -e
[ $rc -eq 3 ] && grep -q "mixf/mix.h5: $SEALMSG" "$T/out.txt" || { cat "$T/out.txt"; fail "select on a flipped mix: exit $rc"; }
[ -z "$(ls -A "$T/k/sel_flip" 2>/dev/null)" ] || fail "select left files after reading a flipped mix"
echo "  select on mix.h5 with a flipped /mix bit: exit 3 naming the file, no output"
echo "== a second run writing the same output (OUT.lock, io/lock.h)"
# A live holder: a lock naming this host and a running pid, as a run that is working writes it;
# a stale one: the pid of a process that has ended (a killed run's lock).
sleep 300 >/dev/null 2>&1 & holder=$!
(exit 0) & dead=$!; wait $dead
mkdir -p "$T/w"
for stage in probe decompose select; do
  case $stage in
    probe) out=$T/w/p.h5 ref=$T/ref/p.h5 cmd=(probe --input "$T/ref/acts.h5" --output "$T/w/p.h5" --top-k 4) ;;
    decompose) out=$T/w/mix ref=$T/ref/mix/mix.h5 cmd=(decompose --probes "$T/ref/p.h5" --input "$T/tasks.h5" --output "$T/w/mix") ;;
    select) out=$T/w/sel ref=$T/ref/sel/scores.h5 cmd=("${SEL[@]}" --output "$T/w/sel/") ;;
  esac
  printf '%s %s %s -\n' "$(hostname)" "$holder" "$(date +%s)" >"$out.lock"
  set +e; run 2 "${cmd[@]}" >"$T/out.txt" 2>&1; rc=$?; set -e
  [ $rc -eq 6 ] && grep -q "is being written by another run (host $(hostname) pid $holder" "$T/out.txt" ||
    { cat "$T/out.txt"; fail "$stage while another run holds its output: exit $rc"; }
  [ ! -e "$out" ] && [ -z "$(ls -A "$T/w" | grep partial)" ] || fail "$stage wrote while another run held the lock"
  [ -e "$out.lock" ] || fail "$stage removed the lock of another run"
  printf '%s %s %s -\n' "$(hostname)" "$dead" "$(date +%s)" >"$out.lock"
  run 2 "${cmd[@]}" >"$T/out.txt" 2>&1 || { cat "$T/out.txt"; fail "$stage did not take over a stale lock"; }
  [ ! -e "$out.lock" ] || fail "$stage left its lock after finishing"
  [ -d "$out" ] && got=$out/$(basename "$ref") || got=$out
  same_h5 "$ref" "$got" || fail "$stage: the output after taking over a stale lock differs"
  echo "  $stage: held by a live run -> exit 6 naming host and pid, nothing written; a stale lock taken over, output equal"
done
kill "$holder" 2>/dev/null || true
echo "faults (stages): all cases ended as documented"
