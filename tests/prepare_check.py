#!/usr/bin/python3
"""Independent reference for `capheads prepare`: re-derive the records from the original files
with Python's own json and csv parsers and compare them, byte for byte, with a JSONL file.

  prepare_check.py FORMAT FILE.jsonl SRC... [--label L] [--task T] [--cue C] [--limit N] [--seed S] [--write]
  prepare_check.py probeset FILE.jsonl CAP=FILE... [--seed S] [--per-class N] [--options hide|show]
                   [--cue C] [--limit N] [--match-length] [--write]

Exit 0 when FILE.jsonl equals the re-derived records (or, with --write, after writing them to
FILE.jsonl). Standard library only: CI runs it with Debian's /usr/bin/python3.

The record shape is the contract of src/prepare.h: keys id, text|messages, label, task, meta in
that order; compact JSON with non-ASCII kept (json.dumps(ensure_ascii=False, separators=(',',
':'))). The id is DATASET/FILE-STEM/INDEX, INDEX counting the records of one file from 0.
Question readers keep meta = source_id, passage, question, choices, answer, then their own keys;
a record of an evaluation split ends its meta with eval_split = the benchmark."""
import argparse
import csv
import json
import os
import sys

CAPS = ["math", "reading", "commonsense", "science", "professional"]
EXT = {"gsm8k": ".jsonl", "mmlu": ".csv", "bbh": ".json", "bbh-cot": ".txt", "arc": ".jsonl", "arc-hf": ".jsonl",
       "csqa": ".jsonl", "csqa-hf": ".jsonl", "squad": ".json", "race": ".txt", "cosmosqa": ".csv",
       "sciq": ".json", "hellaswag": ".jsonl", "medqa": ".jsonl", "less": ".jsonl"}
DEFAULT_LABEL = {"gsm8k": "math", "arc": "science", "arc-hf": "science", "csqa": "commonsense",
                 "csqa-hf": "commonsense", "squad": "reading", "race": "reading", "cosmosqa": "reading",
                 "sciq": "science", "hellaswag": "commonsense", "medqa": "professional"}
DEFAULT_CUE = {f: "Answer:" for f in EXT if f != "less"}
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def stem(path):
    base = os.path.basename(path)
    root, ext = os.path.splitext(base)
    return root if ext else base


def eval_benchmark(fmt, path):
    """The evaluation-split table of prepare_eval.c, written out again."""
    if fmt == "mmlu" and (os.path.basename(path).endswith("_test.csv")
                          or os.path.basename(os.path.dirname(path)) == "test"):
        return "MMLU"
    if fmt == "bbh":
        return "BBH"
    return None


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


def jsonl_objs(path):
    for _, _, raw in jsonl_lines(path):
        yield json.loads(raw.decode("utf-8"))


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


def qa(rid, question, cue, label, task, source_id=None, passage=None, choices=None, labels=None, answer=None,
       **extra):
    """A question record: text = [passage, "\n\nQuestion: "] question, "L. choice" lines, cue;
    meta = source_id, passage, question, choices, answer, then the reader's extra keys."""
    text = (passage + "\n\nQuestion: " if passage is not None else "") + question
    choices = choices or []
    labels = labels or LETTERS
    text += "".join("\n%s. %s" % (l, c) for l, c in zip(labels, choices))
    meta = meta_of(source_id=source_id, passage=passage, question=question)
    if choices:
        meta["choices"] = list(choices)
    if answer is not None:
        meta["answer"] = answer
    meta.update({k: v for k, v in extra.items() if v is not None})
    return record(rid, with_cue(text, cue), label=label, task=task, meta=meta)


def fnv_pos(rid, n):
    return fnv1a64(rid) % n


def bbh_cot(path):
    """(question, chain of thought, answer) of each Q:/A: block of a cot-prompts file."""
    text = open(path, encoding="utf-8").read()
    lines = [l[:-1] if l.endswith("\r") else l for l in text.split("\n")]
    if lines and lines[-1] == "" and text.endswith("\n"):
        lines.pop()
    starts = [i for i, l in enumerate(lines) if l.startswith("Q: ")]
    out = []
    for k, q in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        a = next(i for i in range(q + 1, end) if lines[i].startswith("A: "))
        block = lambda x, y: "\n".join(lines[x:y]).rstrip("\n")[3:]
        question, cot = block(q, a), block(a, end)
        ans = cot[cot.rindex("So the answer is ") + len("So the answer is "):].rstrip(" \n")
        out.append((question, cot, ans[:-1] if ans.endswith(".") else ans))
    return out


def derive(fmt, path, a):
    label = a.label if a.label is not None else DEFAULT_LABEL.get(fmt)
    cue = a.cue if a.cue is not None else DEFAULT_CUE.get(fmt)
    s = stem(path)
    task = a.task
    out = []

    def rid(ds, n=None):
        return "%s/%s/%d" % (ds, s, len(out) if n is None else n)

    if fmt == "gsm8k":
        for o in jsonl_objs(path):
            out.append(qa(rid("gsm8k"), o["question"], cue, label, task, answer=o["answer"]))
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
                q, *choices, ans = row
                out.append(qa(rid("mmlu"), q, cue, label, task if task is not None else "mmlu/" + subject,
                              choices=choices, answer=ans))
    elif fmt in ("arc", "arc-hf", "csqa", "csqa-hf"):
        ds = fmt.split("-")[0]
        for o in jsonl_objs(path):
            q = o["question"]
            if isinstance(q, dict):   # AI2's release
                labels = [c["label"] for c in q["choices"]]
                texts = [c["text"] for c in q["choices"]]
                stem_, concept = q["stem"], q.get("question_concept")
            else:                     # Hugging Face Hub rows
                labels, texts = o["choices"]["label"], o["choices"]["text"]
                stem_, concept = q, o.get("question_concept")
            out.append(qa(rid(ds), stem_, cue, label, task, source_id=o.get("id"), choices=texts, labels=labels,
                          answer=o.get("answerKey") or None, concept=concept if ds == "csqa" else None))
    elif fmt == "bbh":
        for ex in json.load(open(path, encoding="utf-8"))["examples"]:
            out.append(qa(rid("bbh"), ex["input"], cue, label, task if task is not None else "bbh/" + s,
                          answer=ex["target"]))
    elif fmt == "bbh-cot":
        for question, cot, ans in bbh_cot(path):
            out.append(qa(rid("bbh-cot"), question, cue, label, task if task is not None else "bbh/" + s,
                          answer=ans, cot=cot))
    elif fmt == "squad":
        for art in json.load(open(path, encoding="utf-8"))["data"]:
            for para in art["paragraphs"]:
                for x in para["qas"]:
                    out.append(qa(rid("squad"), x["question"], cue, label, task, source_id=x.get("id"),
                                  passage=para["context"], title=art.get("title"),
                                  answers=[y["text"] for y in x["answers"]], is_impossible=x.get("is_impossible")))
    elif fmt == "race":
        def article(o, id_stem):
            for q, opts, ans in zip(o["questions"], o["options"], o["answers"]):
                out.append(qa("race/%s/%d" % (id_stem, len(out)), q, cue, label, task, source_id=o.get("id"),
                              passage=o["article"], choices=opts, answer=ans))
        if path.endswith(".jsonl"):
            for o in jsonl_objs(path):
                if "questions" in o:
                    article(o, s)
                else:
                    out.append(qa(rid("race"), o["question"], cue, label, task, source_id=o.get("example_id"),
                                  passage=o["article"], choices=o["options"], answer=o.get("answer")))
        else:
            o = json.load(open(path, encoding="utf-8"))
            article(o, o["id"][:-4] if o.get("id", "").endswith(".txt") else (o.get("id") or s))
    elif fmt == "cosmosqa":
        if path.endswith(".jsonl"):
            rows = list(jsonl_objs(path))
        else:
            with open(path, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.DictReader(f)]
        for o in rows:
            lab = o.get("label")
            ans = LETTERS[int(lab)] if lab not in (None, "") else None
            out.append(qa(rid("cosmosqa"), o["question"], cue, label, task, source_id=o.get("id"),
                          passage=o["context"], choices=[o["answer%d" % i] for i in range(4)], answer=ans))
    elif fmt == "sciq":
        for o in json.load(open(path, encoding="utf-8")):
            r = rid("sciq")
            pos = fnv_pos(r, 4)
            choices = [o["distractor1"], o["distractor2"], o["distractor3"]]
            choices.insert(pos, o["correct_answer"])
            out.append(qa(r, o["question"], cue, label, task, choices=choices, answer=LETTERS[pos],
                          support=o.get("support")))
    elif fmt == "hellaswag":
        for o in jsonl_objs(path):
            lab = o.get("label")
            ans = LETTERS[int(lab)] if lab not in (None, "") else None
            out.append(qa(rid("hellaswag"), o["ctx"], cue, label, task, source_id=o.get("source_id"),
                          choices=o["endings"], answer=ans, activity_label=o.get("activity_label")))
    elif fmt == "medqa":
        for o in jsonl_objs(path):
            out.append(qa(rid("medqa"), o["question"], cue, label, task, choices=list(o["options"].values()),
                          labels=list(o["options"].keys()), answer=o.get("answer_idx"), meta_info=o.get("meta_info")))
    elif fmt == "less":
        for lineno, off, raw in jsonl_lines(path):
            o = json.loads(raw.decode("utf-8"))
            meta = meta_of(dataset=o.get("dataset"), source_id=o.get("id"), file=path)
            meta.update(line=lineno, offset=off, bytes=len(raw))
            # the offsets must give back the original line exactly
            with open(path, "rb") as f:
                f.seek(off)
                assert f.read(len(raw)) == raw
            out.append(record("less/%s/%d" % (s, len(out)), messages=o["messages"], label=label,
                              task=a.task, meta=meta))
    bench = eval_benchmark(fmt, path)
    if bench:
        for r in out:
            r.setdefault("meta", {})["eval_split"] = bench
    return sample(out, a)


def sample(recs, a):
    """--limit N: the N records with the smallest (key, id), kept in file order."""
    if a.limit is None:
        return recs
    order = sorted(range(len(recs)), key=lambda i: (key(recs[i]["id"], a.seed), recs[i]["id"].encode("utf-8")))
    keep = set(order[: a.limit])
    return [r for i, r in enumerate(recs) if i in keep]


def expand(fmt, src):
    if os.path.isdir(src):
        names = sorted(n for n in os.listdir(src)
                       if not n.startswith(".") and n.endswith(EXT[fmt]) and len(n) > len(EXT[fmt]))
        return [src + "/" + n for n in names]
    return [src]


# The sampling key of --limit and probeset: splitmix64(fnv1a64(id) ^ splitmix64(seed)). probeset
# keeps per class the m smallest keys; output sorted by (key, id).
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


def key(rid, seed):
    return mix64(fnv1a64(rid) ^ mix64(seed))


def probe_text(meta, show, cue):
    """The one probing template: [passage "\n\n"] "Question: " question [choices] "\n" cue."""
    text = (meta["passage"] + "\n\n" if "passage" in meta else "") + "Question: " + meta["question"]
    if show:
        text += "".join("\n%s. %s" % (LETTERS[i], c) for i, c in enumerate(meta["choices"]))
    return with_cue(text, cue)


def length_bin(n):
    """Fixed bins: edges e_0 = 1, e_(i+1) = e_i + max(1, e_i // 8)."""
    e, b = 1, 0
    while e + max(1, e // 8) <= n:
        e, b = e + max(1, e // 8), b + 1
    return b


def match_length(caps, lens, present, per_class):
    """--match-length over candidates in key order: per bin, every class keeps the smallest count a
    class has there (spread over --per-class N by largest remainders, ties to the smaller bin),
    its records of smallest key first. Lengths are len(str): Unicode code points."""
    bins = [length_bin(n) for n in lens]
    count = {}
    for c, b in zip(caps, bins):
        count[c, b] = count.get((c, b), 0) + 1
    quota = {b: min(count.get((c, b), 0) for c in present) for b in set(bins)}
    total = sum(quota.values())
    assert total > 0, "no length bin holds records of every class"
    if per_class is not None:
        assert per_class <= total, "--per-class %d > %d" % (per_class, total)
        scaled = {b: per_class * q // total for b, q in quota.items()}
        rest = per_class - sum(scaled.values())
        for b in sorted(quota, key=lambda b: (-(per_class * quota[b] % total), b))[:rest]:
            scaled[b] += 1
        quota = scaled
    taken, keep = {}, []
    for c, b in zip(caps, bins):
        keep.append(taken.get((c, b), 0) < quota[b])
        taken[c, b] = taken.get((c, b), 0) + keep[-1]
    return keep


def derive_probeset(srcs, a):
    items, present = [], []
    for arg in srcs:
        cap, path = arg.split("=", 1)
        assert cap in CAPS, cap
        present.append(cap)
        recs = list(jsonl_objs(path))
        for o in sample(recs, a):
            assert o.get("label", cap) == cap
            items.append((key(o["id"], a.seed), o["id"], cap, o))
    counts = {c: sum(1 for it in items if it[2] == c) for c in set(present)}
    m = a.per_class if a.per_class is not None else min(counts.values())
    items.sort(key=lambda it: (it[0], it[1].encode("utf-8")))
    cue = a.cue if a.cue is not None else "Answer:"
    texts = [probe_text(o["meta"], a.options == "show", cue) for _, _, _, o in items]
    if a.match_length:
        keep = match_length([it[2] for it in items], [len(t) for t in texts], set(present), a.per_class)
    else:
        taken = {c: 0 for c in counts}
        keep = []
        for _, _, cap, _ in items:
            keep.append(taken[cap] < m)
            taken[cap] += 1
    out = []
    for (_, _, cap, o), text, k in zip(items, texts, keep):
        if not k:
            continue
        r = {"id": o["id"], "text": text, "label": cap}
        r.update({k: o[k] for k in ("task", "meta") if k in o})
        out.append(r)
    if a.options == "show":
        assert len({len(r["meta"]["choices"]) for r in out}) == 1, "shown options with different counts"
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
    p.add_argument("--options", default="hide")
    p.add_argument("--match-length", action="store_true")
    p.add_argument("--allow-eval-split", action="store_true")
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
