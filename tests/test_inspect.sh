#!/usr/bin/env bash
# inspect --verify on archives made by tests/tools/make_archive.py (Debian python3 + h5py) and
# then damaged with h5py: a complete archive passes (exit 0); an incomplete one says INCOMPLETE
# (exit 3); inconsistent ones (complete flag over missing rows, a NaN, a label outside -1..4, a
# duplicate id, a column of the wrong length) say INCONSISTENT or name the column (exit 3); a
# truncated file, another HDF5 file and a missing file are refused by name without a crash.
set -euo pipefail
: "${CAPHEADS:?}" "${CH_SRC:?}"
T=$(mktemp -d /tmp/ch_inspect_XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "FAIL: $*" >&2; exit 1; }
mk() { /usr/bin/python3 "$CH_SRC/tests/tools/make_archive.py" "$@" >/dev/null; }
# expect NAME STATUS PATTERN FILE: inspect --verify FILE exits STATUS and prints PATTERN
expect() {
  set +e; "$CAPHEADS" inspect "$4" --verify >out.txt 2>&1; local rc=$?; set -e
  [ "$rc" -eq "$2" ] || { cat out.txt; fail "$1: exit $rc, expected $2"; }
  grep -q -- "$3" out.txt || { cat out.txt; fail "$1: output lacks '$3'"; }
  echo "  $1: exit $rc: $(grep -m1 -- "$3" out.txt)"
}

mk ok.h5 --n 50
mk inc.h5 --n 50 --incomplete 5
mk nan.h5 --n 50 --nan 3:1:2
mk label.h5 --n 50 --bad-label 4
cp inc.h5 flag.h5
cp ok.h5 dup.h5
cp ok.h5 short.h5
/usr/bin/python3 - <<'PY'
import h5py, numpy as np
with h5py.File("flag.h5", "r+") as f:
    f.attrs["complete"] = np.uint8(1)          # claims rows it does not hold
with h5py.File("dup.h5", "r+") as f:
    f["ids"][1] = f["ids"][0]
with h5py.File("short.h5", "r+") as f:
    del f["done"]
    f.create_dataset("done", data=np.ones(40, np.uint8))
with h5py.File("other.h5", "w") as f:
    f["x"] = [1]
PY
head -c 3000 ok.h5 >trunc.h5

expect "complete archive" 0 "OK, complete and consistent" ok.h5
expect "incomplete archive" 3 "INCOMPLETE: 5 of 50 rows not done" inc.h5
expect "complete flag over missing rows" 3 "INCONSISTENT: marked complete but 5 rows" flag.h5
expect "non-finite value" 3 "1 with non-finite values" nan.h5
expect "label outside -1..4" 3 "1 with a label outside" label.h5
expect "duplicate id" 3 "1 duplicate ids" dup.h5
expect "done column too short" 3 "/done should be 1-D with 50 rows" short.h5
expect "truncated file" 3 "trunc.h5: HDF5 cannot open it" trunc.h5  # damaged input data: exit 3
expect "another HDF5 file" 3 "other.h5: not a capheads file" other.h5
expect "missing file" 5 "missing.h5: cannot open" missing.h5
echo "test_inspect: all checks passed"
