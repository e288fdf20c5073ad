#!/usr/bin/python3
"""Independent reference for `capheads prepare`: re-derive the records from the original files
with Python's own json and csv parsers and compare them, byte for byte, with a JSONL file.

  prepare_check.py FORMAT FILE.jsonl SRC... [--label L] [--task T] [--cue C] [--limit N] [--write]
  prepare_check.py probeset FILE.jsonl CAP=FILE... [--seed S] [--per-class N] [--write]

Exit 0 when FILE.jsonl equals the re-derived records (or, with --write, after writing them to
FILE.jsonl). Standard library only: CI runs it with Debian's /usr/bin/python3.

The record shape is the contract of src/prepare.h: keys id, text|messages, label, task, meta in
that order; compact JSON with non-ASCII kept (json.dumps(ensure_ascii=False, separators=(',',
':'))). The id is DATASET/FILE-STEM/INDEX, INDEX counting the records of one file from 0."""
import argparse
import csv
import json
import os
import sys

CAPS = ["math", "reading", "commonsense", "science", "professional"]
EXT = {"gsm8k": ".jsonl", "mmlu": ".csv", "bbh": ".json", "arc": ".jsonl", "csqa": ".jsonl",
       "squad": ".json", "less": ".jsonl"}
DEFAULT_LABEL = {"gsm8k": "math", "arc": "science", "csqa": "commonsense", "squad": "reading"}
DEFAULT_CUE = {"mmlu": "Answer:", "arc": "Answer:", "csqa": "Answer:", "squad": "Answer:"}


def stem(path):
    base = os.path.basename(path)
    root, ext = os.path.splitext(base)
    return root if ext else base


def jsonl_lines(path):
    """(line number, byte offset, bytes without '\\n') of each non-blank line."""
    data = open(path, "rb").read()
    pos, lineno = 0, 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        nxt = len(data) if end < 0 else end + 1
        raw = data[pos:nxt if end < 0 else end]
        lineno += 1
        if raw.strip(b" \t\r"):
            yield lineno, pos, raw
        pos = nxt


def with_cue(text, cue):
    return text + "\n" + cue if cue else text


def record(rid, text=None, messages=None, label=None, task=None, meta=None):
    r = {"id": rid}
    if messages is not None:
        r["messages"] = messages
    else:
        r["text"] = text
    if label:
        r["label"] = label
    if task:
        r["task"] = task
    if meta is not None:
        r["meta"] = meta
    return r


def meta_of(**kw):
    return {k: v for k, v in kw.items() if v is not None}


def mc_text(question, labels, choices, cue):
    return with_cue(question + "".join("\n%s. %s" % (l, c) for l, c in zip(labels, choices)), cue)


def derive(fmt, path, a):
    label = a.label if a.label is not None else DEFAULT_LABEL.get(fmt)
    cue = a.cue if a.cue is not None else DEFAULT_CUE.get(fmt)
    s = stem(path)
    out = []

    def full():
        return a.limit is not None and len(out) >= a.limit

    if fmt == "gsm8k":
        for _, _, raw in jsonl_lines(path):
            if full():
                break
            o = json.loads(raw.decode("utf-8"))
            out.append(record("gsm8k/%s/%d" % (s, len(out)), with_cue(o["question"], cue), label=label,
                              task=a.task, meta={"answer": o["answer"]}))
    elif fmt == "mmlu":
        subject = s
        for suf in ("_dev", "_val", "_test"):
            if subject.endswith(suf) and len(subject) > len(suf):
                subject = subject[: -len(suf)]
                break
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                if not row:
                    continue
                if full():
                    break
                q, *choices, ans = row
                out.append(record("mmlu/%s/%d" % (s, len(out)), mc_text(q, "ABCD", choices, cue),
                                  label=label, task=a.task if a.task is not None else "mmlu/" + subject,
                                  meta={"answer": ans, "choices": choices}))
    elif fmt in ("arc", "csqa"):
        for _, _, raw in jsonl_lines(path):
            if full():
                break
            o = json.loads(raw.decode("utf-8"))
            q = o["question"]
            labels = [c["label"] for c in q["choices"]]
            texts = [c["text"] for c in q["choices"]]
            meta = meta_of(source_id=o.get("id"), answer=o.get("answerKey"))
            meta["choices"] = texts
            if fmt == "csqa" and "question_concept" in q:
                meta["concept"] = q["question_concept"]
            out.append(record("%s/%s/%d" % (fmt, s, len(out)), mc_text(q["stem"], labels, texts, cue),
                              label=label, task=a.task, meta=meta))
    elif fmt == "bbh":
        for ex in json.load(open(path, encoding="utf-8"))["examples"]:
            if full():
                break
            out.append(record("bbh/%s/%d" % (s, len(out)), with_cue(ex["input"], cue), label=label,
                              task=a.task if a.task is not None else "bbh/" + s,
                              meta={"target": ex["target"]}))
    elif fmt == "squad":
        for art in json.load(open(path, encoding="utf-8"))["data"]:
            for para in art["paragraphs"]:
                for qa in para["qas"]:
                    if full():
                        return out
                    meta = meta_of(source_id=qa.get("id"), title=art.get("title"))
                    meta["answers"] = [x["text"] for x in qa["answers"]]
                    if "is_impossible" in qa:
                        meta["is_impossible"] = qa["is_impossible"]
                    text = with_cue(para["context"] + "\n\nQuestion: " + qa["question"], cue)
                    out.append(record("squad/%s/%d" % (s, len(out)), text, label=label, task=a.task,
                                      meta=meta))
    elif fmt == "less":
        for lineno, off, raw in jsonl_lines(path):
            if full():
                break
            o = json.loads(raw.decode("utf-8"))
            meta = meta_of(dataset=o.get("dataset"), source_id=o.get("id"), file=path)
            meta.update(line=lineno, offset=off, bytes=len(raw))
            # the offsets must give back the original line exactly
            with open(path, "rb") as f:
                f.seek(off)
                assert f.read(len(raw)) == raw
            out.append(record("less/%s/%d" % (s, len(out)), messages=o["messages"], label=label,
                              task=a.task, meta=meta))
    return out


def expand(fmt, src):
    if os.path.isdir(src):
        names = sorted(n for n in os.listdir(src)
                       if not n.startswith(".") and n.endswith(EXT[fmt]) and len(n) > len(EXT[fmt]))
        return [src + "/" + n for n in names]
    return [src]


# probeset: key = splitmix64(fnv1a64(id) ^ splitmix64(seed)); per class keep the m smallest keys;
# output sorted by (key, id).
M64 = (1 << 64) - 1


def mix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def derive_probeset(srcs, a):
    items, present = [], []
    for arg in srcs:
        cap, path = arg.split("=", 1)
        assert cap in CAPS, cap
        present.append(cap)
        n = 0
        for _, _, raw in jsonl_lines(path):
            if a.limit is not None and n >= a.limit:
                break
            n += 1
            o = json.loads(raw.decode("utf-8"))
            assert o.get("label", cap) == cap
            items.append((mix64(fnv1a64(o["id"]) ^ mix64(a.seed)), o["id"], cap, o))
    counts = {c: sum(1 for it in items if it[2] == c) for c in set(present)}
    m = a.per_class if a.per_class is not None else min(counts.values())
    items.sort(key=lambda it: (it[0], it[1].encode("utf-8")))
    taken = {c: 0 for c in counts}
    out = []
    for _, _, cap, o in items:
        if taken[cap] >= m:
            continue
        taken[cap] += 1
        r = {k: o[k] for k in ("id", "text", "messages") if k in o}
        r["label"] = cap
        r.update({k: o[k] for k in ("task", "meta") if k in o})
        out.append(r)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("format")
    p.add_argument("output")
    p.add_argument("srcs", nargs="+")
    p.add_argument("--label")
    p.add_argument("--task")
    p.add_argument("--cue")
    p.add_argument("--limit", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-class", type=int)
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    if a.format == "probeset":
        recs = derive_probeset(a.srcs, a)
    else:
        recs = [r for src in a.srcs for path in expand(a.format, src) for r in derive(a.format, path, a)]
    want = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in recs)
    want = want.encode("utf-8")
    if a.write:
        open(a.output, "wb").write(want)
        return 0
    got = open(a.output, "rb").read()
    if got == want:
        print("prepare_check: %s: %d records match" % (a.output, len(recs)))
        return 0
    gl, wl = got.split(b"\n"), want.split(b"\n")
    for i, (g, w) in enumerate(zip(gl, wl)):
        if g != w:
            print("prepare_check: %s: line %d differs\n  got:  %r\n  want: %r" % (a.output, i + 1, g, w))
            break
    else:
        print("prepare_check: %s: %d lines, expected %d" % (a.output, len(gl) - 1, len(wl) - 1))
    return 1


if __name__ == "__main__":
    sys.exit(main())
