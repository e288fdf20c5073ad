#!/usr/bin/env bash
# slurm/scaling_report.py on hand-made timing records (docs/timing.md) whose answers are known:
# strong and weak formulas, stage record preferred over the sbatch wrapper's, median of repeats,
# nodes taken from the wrapper, valid SVG, and a clear error for a malformed record.
set -uo pipefail
SRC=${CH_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
R="/usr/bin/python3 $SRC/slurm/scaling_report.py"
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
nfail=0
check() { if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: want '$3' got '$2'"; nfail=$((nfail + 1)); fi; }
rec() { echo "{\"stage\":\"extract\",\"ranks\":$1,\"records\":1000,\"tokens\":20000,\"seconds\":$2,\"io_seconds\":null}"; }
wrap() { echo "{\"stage\":\"extract\",\"ranks\":$1,\"nodes\":$2,\"records\":1000,\"seconds\":99,\"source\":\"sbatch\",\"rc\":0}"; }
# strong: T(1)=8, T(2)=median(4.4, 4.0, 5.0)=4.4, T(4)=2.5 on 2 nodes -> speedup 1.82, 3.20; efficiency 0.91, 0.80
{ wrap 1 1; rec 1 8; } >"$d/s1.jsonl"
rec 2 4.4 >"$d/s2a.jsonl"; rec 2 4.0 >"$d/s2b.jsonl"; rec 2 5.0 >"$d/s2c.jsonl"
{ rec 4 2.5; wrap 4 2; } >"$d/s4.jsonl"
out=$($R --mode strong --svg "$d/s.svg" "$d"/s*.jsonl)
check "strong rows (ranks nodes runs seconds rec/s tok/s speedup eff)" \
  "$(awk 'NR > 2 { printf "%s %s %s %s %s %s %s %s;", $1, $2, $3, $5, $7, $8, $9, $10 }' <<<"$out")" \
  "1 1 1 8.000 125.0 2500.0 1.00 1.00;2 1 3 4.400 227.3 4545.5 1.82 0.91;4 2 1 2.500 400.0 8000.0 3.20 0.80;"
check "SVG parses, one point per rank count" \
  "$(/usr/bin/python3 -c 'import sys, xml.etree.ElementTree as E; print(len(E.parse(sys.argv[1]).getroot().findall(".//{*}circle")))' "$d/s.svg")" 3
# weak: T(1)=2, T(4)=2.5 -> efficiency 0.80, scaled speedup 3.20
rec 1 2 >"$d/w1.jsonl"; rec 4 2.5 >"$d/w4.jsonl"
out=$($R --mode weak "$d"/w*.jsonl)
check "weak efficiency T(1)/T(n), scaled speedup" "$(awk 'NR == 4 { print $9, $10 }' <<<"$out")" "3.20 0.80"
# only the wrapper record: its seconds are used
wrap 2 1 >"$d/o.jsonl"
check "wrapper-only run uses the wrapper's seconds" "$($R "$d/o.jsonl" | awk 'NR == 3 { print $5 }')" "99.000"
# malformed input
echo '{"stage":"extract","seconds":1}' >"$d/bad.jsonl"
msg=$($R "$d/bad.jsonl" 2>&1); rc=$?
check "missing key: exit status and message naming file:line and key" "$rc $msg" "1 scaling_report: $d/bad.jsonl:1: missing required key 'ranks'"
echo '{"stage":"extract","ranks":1,"seconds":1,"source":"sbatch","rc":137}' >"$d/failed.jsonl"
msg=$($R "$d/failed.jsonl" 2>&1); rc=$?
check "failed run is refused" "$rc $msg" "1 scaling_report: $d/failed.jsonl:1: the run failed (rc 137)"
[ $nfail -eq 0 ]
