#!/usr/bin/env bash
# The layers of docs/DESIGN.md, checked on the source text: every quoted #include of a file in
# base/ mpi/ io/ kernels/ src/ names a header of its own layer or of one below it, and none
# reaches out with a relative path ("../x.h" or "dir/x.h"), which would get past the build's
# include folders. The build enforces the same rule for the layers' libraries (a layer's include
# path holds only its own folders and those below); this test also catches what no translation
# unit of the build compiles (headers included by nobody, CUDA files in a build without nvcc).
set -euo pipefail
cd "${CH_SRC:-$(dirname "$0")/..}"
fail=0
layer_of_dir() {
  case $1 in
    base) echo 0 ;; mpi) echo 1 ;; io) echo 2 ;; kernels) echo 3 ;;
    src/model|src/tokenizer) echo 4 ;;
    src/stage|src/extract|src/probe|src/select|src/prepare|src/inspect) echo 5 ;;
    src/cli) echo 6 ;;
    *) echo "" ;;
  esac
}
names=(base mpi io kernels engine stages cli)
# header name -> layer (a header name is unique across the tree)
declare -A hlayer
for h in $(find base mpi io kernels src -name '*.h' | sort); do
  n=$(basename "$h")
  [ -z "${hlayer[$n]:-}" ] || { echo "FAIL: header name $n is used twice"; fail=1; }
  hlayer[$n]=$(layer_of_dir "$(dirname "$h")")
done
checked=0
for f in $(find base mpi io kernels src -name '*.[ch]' -o -name '*.cu' | sort); do
  d=$(dirname "$f"); me=$(layer_of_dir "$d")
  [ -n "$me" ] || { echo "FAIL: $f is in no layer (add its folder to DESIGN.md and this test)"; fail=1; continue; }
  while IFS= read -r inc; do
    checked=$((checked + 1))
    case $inc in */*) echo "FAIL: $f includes \"$inc\": a path, not a name on the layer's include path"; fail=1; continue ;; esac
    # a .c included as a second ISA copy of a file of the same folder
    [ -e "$d/$inc" ] && case $inc in *.c) continue ;; esac
    l=${hlayer[$inc]:-}
    [ -n "$l" ] || { echo "FAIL: $f includes \"$inc\", which is no header of the tree"; fail=1; continue; }
    if [ "$l" -gt "$me" ]; then
      echo "FAIL: $f (${names[$me]}) includes \"$inc\" of the layer above (${names[$l]})"; fail=1
    fi
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done
[ $checked -gt 100 ] || { echo "FAIL: only $checked includes read"; fail=1; }
[ $fail = 0 ] && echo "layers: $checked includes of $(find base mpi io kernels src -name '*.[ch]' -o -name '*.cu' | wc -l) files follow base < mpi < io < kernels < engine < stages < cli"
exit $fail
