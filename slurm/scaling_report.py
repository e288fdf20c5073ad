#!/usr/bin/python3
"""Scaling-study report: timing records (docs/timing.md) -> table of throughput, speedup, efficiency
and an SVG plot.  Python standard library only.

usage: scaling_report.py [--mode strong|weak] [--stage S] [--svg OUT.svg] TIMING.jsonl...

Each file is one run (slurm/scaling.sh writes OUT/timing/<label>.jsonl).  In a file, the stage's own
record (no "source" key, or "source": "stage") is preferred over the sbatch wrapper's; "nodes" is taken
from whichever has it.  Runs with the same (ranks, nodes) are combined by the median of seconds.
Strong scaling: speedup = T(n0)/T(n), efficiency = speedup * n0/n.  Weak scaling: efficiency =
T(n0)/T(n), speedup (scaled) = efficiency * n/n0.  n0 = the smallest rank count measured.
"""
import argparse
import json
import statistics
import sys


def load_run(path, stage):
    own, wrap = None, None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"scaling_report: {path}:{lineno}: not JSON: {e.msg}")
            for key in ("stage", "ranks", "seconds"):
                if key not in rec:
                    sys.exit(f"scaling_report: {path}:{lineno}: missing required key '{key}'")
            if stage and rec["stage"] != stage:
                continue
            if rec.get("rc", 0) not in (0, None):
                sys.exit(f"scaling_report: {path}:{lineno}: the run failed (rc {rec['rc']})")
            if rec.get("source", "stage") == "sbatch":
                wrap = rec
            else:
                own = rec
    rec = own or wrap
    if rec is None:
        return None
    run = dict(rec)
    run["nodes"] = rec.get("nodes") or (wrap or {}).get("nodes") or 1
    run["file"] = path
    return run


def summarize(runs, mode):
    groups = {}
    for r in runs:
        groups.setdefault((int(r["ranks"]), int(r["nodes"])), []).append(r)
    rows = []
    for (ranks, nodes), rs in sorted(groups.items()):
        secs = statistics.median(float(r["seconds"]) for r in rs)
        def med(key):
            vals = [float(r[key]) for r in rs if r.get(key) is not None]
            return statistics.median(vals) if vals else None
        rows.append({"ranks": ranks, "nodes": nodes, "runs": len(rs), "seconds": secs,
                     "records": med("records"), "tokens": med("tokens"), "io": med("io_seconds")})
    if not rows:
        return rows
    base = rows[0]
    for row in rows:
        ratio = base["seconds"] / row["seconds"] if row["seconds"] > 0 else float("nan")
        scale = row["ranks"] / base["ranks"]
        if mode == "strong":
            row["speedup"], row["efficiency"] = ratio, ratio / scale
        else:
            row["speedup"], row["efficiency"] = ratio * scale, ratio
        row["rec_s"] = row["records"] / row["seconds"] if row["records"] and row["seconds"] > 0 else None
        row["tok_s"] = row["tokens"] / row["seconds"] if row["tokens"] and row["seconds"] > 0 else None
    return rows


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_table(rows, mode, stage, out):
    out.write(f"{mode} scaling of {stage or 'the stage'} (base: {rows[0]['ranks']} ranks)\n")
    out.write(f"{'ranks':>5} {'nodes':>5} {'runs':>4} {'records':>9} {'seconds':>9} {'io %':>5} "
              f"{'records/s':>10} {'tokens/s':>10} {'speedup':>7} {'effic.':>6}\n")
    for r in rows:
        io = 100 * r["io"] / r["seconds"] if r["io"] is not None and r["seconds"] > 0 else None
        out.write(f"{r['ranks']:>5} {r['nodes']:>5} {r['runs']:>4} {fmt(r['records'], '9.0f')} "
                  f"{r['seconds']:>9.3f} {fmt(io, '5.1f')} {fmt(r['rec_s'], '10.1f')} "
                  f"{fmt(r['tok_s'], '10.1f')} {r['speedup']:>7.2f} {r['efficiency']:>6.2f}\n")


def svg_plot(rows, mode, stage):
    """Speedup (strong) or efficiency (weak) against ranks, log2 x axis, with the ideal line."""
    import math
    w, h, ml, mr, mt, mb = 520, 340, 60, 20, 40, 50
    xs = [math.log2(r["ranks"]) for r in rows]
    key = "speedup" if mode == "strong" else "efficiency"
    ys = [r[key] for r in rows]
    ideal = [r["ranks"] / rows[0]["ranks"] if mode == "strong" else 1.0 for r in rows]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y1 = max(ys + ideal) * 1.1
    px = lambda x: ml + (x - x0) / (x1 - x0) * (w - ml - mr)
    py = lambda y: h - mb - y / y1 * (h - mt - mb)
    p = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
         f'<rect width="{w}" height="{h}" fill="white"/>',
         f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">{mode} scaling: {stage or "stage"} '
         f'{key}</text>',
         f'<line x1="{ml}" y1="{h - mb}" x2="{w - mr}" y2="{h - mb}" stroke="black"/>',
         f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{h - mb}" stroke="black"/>',
         f'<text x="{(ml + w - mr) / 2}" y="{h - 12}" text-anchor="middle">MPI ranks</text>',
         f'<text x="16" y="{(mt + h - mb) / 2}" text-anchor="middle" transform="rotate(-90 16 {(mt + h - mb) / 2})">'
         f'{key}</text>']
    for r, x in zip(rows, xs):
        p.append(f'<text x="{px(x):.1f}" y="{h - mb + 16}" text-anchor="middle">{r["ranks"]}</text>')
    for i in range(6):
        y = y1 * i / 5
        p.append(f'<text x="{ml - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.2g}</text>')
        p.append(f'<line x1="{ml}" y1="{py(y):.1f}" x2="{w - mr}" y2="{py(y):.1f}" stroke="#ddd"/>')
    pts = lambda vals: " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, vals))
    p.append(f'<polyline points="{pts(ideal)}" fill="none" stroke="#888" stroke-dasharray="5,4"/>')
    p.append(f'<polyline points="{pts(ys)}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    for x, y in zip(xs, ys):
        p.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="#1f77b4"><title>{y:.3f}</title></circle>')
    p.append(f'<text x="{w - mr - 4}" y="{mt + 4}" text-anchor="end" fill="#888">dashed: ideal</text>')
    p.append("</svg>")
    return "\n".join(p) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--mode", choices=("strong", "weak"), default="strong")
    ap.add_argument("--stage", default=None, help="only records of this stage")
    ap.add_argument("--svg", default=None, help="write the plot here")
    a = ap.parse_args()
    runs = [r for r in (load_run(f, a.stage) for f in a.files) if r]
    if not runs:
        sys.exit("scaling_report: no timing records in " + " ".join(a.files))
    stage = a.stage or runs[0]["stage"]
    rows = summarize(runs, a.mode)
    print_table(rows, a.mode, stage, sys.stdout)
    if a.svg:
        with open(a.svg, "w", encoding="utf-8") as f:
            f.write(svg_plot(rows, a.mode, stage))


if __name__ == "__main__":
    main()
