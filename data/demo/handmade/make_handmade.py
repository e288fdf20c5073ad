#!/usr/bin/python3
"""Write the hand-made demo datasets of capheads in their ORIGINAL formats:

  ../arc/ARC-Demo.jsonl       ARC JSONL ({"id", "question": {"stem", "choices"}, "answerKey"})
  ../csqa/csqa_demo.jsonl     CommonsenseQA JSONL (ARC shape + "question_concept")
  ../squad/squad_demo.json    SQuAD v1.1 JSON ({"version", "data": [{"title", "paragraphs"}]})
  ../less/pool.jsonl          LESS training-pool JSONL ({"dataset", "id", "messages"})

The text is written for capheads (arc_csqa.py, squad_text.py, pool_text.py); it is NOT the real
ARC, CommonsenseQA, SQuAD or LESS data, which are not available here. Deterministic (fixed seed),
standard library only."""
import hashlib
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import arc_csqa  # noqa: E402
import pool_text  # noqa: E402
import squad_text  # noqa: E402

OUT = os.path.dirname(HERE)
NOTE = ("hand-made sample in the original format; not the real dataset. Written for capheads by its "
        "developers (data/demo/handmade/*.py) so the demo has {what} data without the real dataset; "
        "regenerate with data/demo/handmade/make_handmade.py. License: same as capheads.\n")


def write(path, data, what):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode("utf-8"))
    with open(os.path.join(os.path.dirname(path), "SOURCE.txt"), "w", encoding="utf-8") as f:
        f.write(os.path.basename(path) + ": " + NOTE.format(what=what))


def arc():
    lines = []
    for i, (stem, choices, ans) in enumerate(arc_csqa.ARC):
        labels = "ABCD"
        lines.append(json.dumps({"id": "CapheadsDemo_%03d" % (i + 1),
                                 "question": {"stem": stem, "choices": [{"text": t, "label": labels[k]} for k, t in enumerate(choices)]},
                                 "answerKey": labels[ans]}))
    write(os.path.join(OUT, "arc", "ARC-Demo.jsonl"), "\n".join(lines) + "\n", "science (ARC-style)")


def csqa(rng):
    lines = []
    for concept, stem, choices, ans in arc_csqa.CSQA:
        order = list(range(5))
        rng.shuffle(order)  # the answer is not always A
        texts = [choices[k] for k in order]
        key = "ABCDE"[order.index(ans)]
        lines.append(json.dumps({"answerKey": key, "id": hashlib.md5(stem.encode()).hexdigest(),
                                 "question": {"question_concept": concept,
                                              "choices": [{"label": "ABCDE"[k], "text": t} for k, t in enumerate(texts)],
                                              "stem": stem}}))
    write(os.path.join(OUT, "csqa", "csqa_demo.jsonl"), "\n".join(lines) + "\n", "commonsense (CommonsenseQA-style)")


def squad():
    data = []
    for title, context, qas in squad_text.ARTICLES:
        items = []
        for q, a in qas:
            start = context.find(a)
            assert start >= 0, (title, a)
            items.append({"answers": [{"answer_start": start, "text": a}], "question": q,
                          "id": hashlib.sha1((title + q).encode()).hexdigest()[:24]})
        data.append({"title": title, "paragraphs": [{"context": context, "qas": items}]})
    write(os.path.join(OUT, "squad", "squad_demo.json"), json.dumps({"data": data, "version": "1.1"}),
          "reading (SQuAD-style)")


def pool(rng):
    recs = []
    counters = {}

    def add(dataset, messages):
        n = counters.get(dataset, 0)
        counters[dataset] = n + 1
        recs.append({"dataset": dataset, "id": "%s_%d" % (dataset, n), "messages": messages})

    def u(text):
        return {"role": "user", "content": text}

    def a(text):
        return {"role": "assistant", "content": text}

    def math_item():
        k = rng.randrange(len(pool_text.MATH))
        tmpl, solve = pool_text.MATH[k]
        n = rng.randint(2, 9)
        c = rng.randint(2, 12)
        b = rng.randint(2, 40)
        x = rng.randint(b * n + 1, b * n + 90)
        if solve is None:  # percent discount
            price, pct = rng.choice([20, 40, 60, 80, 120]), rng.choice([10, 25, 50])
            q = tmpl.format(a=price, p=pct)
            r = price * (100 - pct) // 100
            return q, "{p}% of {a} is {d}, so the price is {a} - {d} = {r}.".format(p=pct, a=price, d=price * pct // 100, r=r), r
        q = tmpl.format(a=x, b=b, c=c, n=n)
        why, ans = solve(x, b, c, n)
        return q, why, ans

    # CoT: grade-school math with step-by-step answers
    for _ in range(75):
        q, why, ans = math_item()
        add("cot", [u("Q: " + q + "\nA: Let's think step by step."), a(why + " So the answer is %s." % ans)])
    # Flan v2: templated tasks of every kind
    for passage, q, ans in pool_text.PASSAGES:
        add("flan_v2", [u("Read the passage and answer the question.\n\nPassage: %s\n\nQuestion: %s" % (passage, q)), a(ans)])
        add("flan_v2", [u("%s\n\nBased on the text above, %s" % (passage, q[0].lower() + q[1:])), a(ans)])
        add("flan_v2", [u("Summarize this paragraph in one sentence:\n%s" % passage), a(passage.split(". ")[0] + ".")])
    for q, ans in pool_text.SCIENCE:
        add("flan_v2", [u("Answer the following science question.\n%s" % q), a(ans)])
        add("flan_v2", [u("Q: %s\nA:" % q), a(ans.split(",")[0].rstrip(".") + ".")])
    for q, ans in pool_text.COMMONSENSE:
        add("flan_v2", [u(q), a(ans)])
        add("flan_v2", [u("Use common sense to answer: %s" % q), a(ans)])
    for _ in range(10):
        x, y = rng.randint(10, 999), rng.randint(10, 999)
        add("flan_v2", [u("Solve: %d + %d = ?" % (x, y)), a(str(x + y))])
    for q, ans in pool_text.GENERAL:
        add("flan_v2", [u(q), a(ans)])
    # Dolly: open QA, professional knowledge, brainstorming
    for q, ans in pool_text.PROFESSIONAL:
        add("dolly", [u(q), a(ans)])
        add("dolly", [u("Explain briefly, as a professional would: " + q[0].lower() + q[1:]), a(ans)])
    for q, ans in pool_text.GENERAL:
        add("dolly", [u(q), a(ans)])
    for q, ans in pool_text.SCIENCE:
        add("dolly", [u(q), a(ans)])
    for _ in range(10):
        q, why, ans = math_item()
        add("dolly", [u(q), a("%s" % ans)])
    # Open Assistant: multi-turn conversations, sometimes with a system prompt
    topics = ([(q, s) for q, s in pool_text.PROFESSIONAL] + [(q, s) for q, s in pool_text.SCIENCE] +
              [(q, s) for q, s in pool_text.COMMONSENSE] + [(p[1] + "\n\nContext: " + p[0], p[2]) for p in pool_text.PASSAGES])
    rng.shuffle(topics)
    for i, (q, ans) in enumerate(topics[:50]):
        msgs = []
        if i % 3 == 0:
            msgs.append({"role": "system", "content": "You are a helpful, concise assistant."})
        msgs += [u(q), a(ans), u(rng.choice(["Thanks! Can you say that more simply?", "Why is that?", "Can you give an example?"])),
                 a("Sure. In short: " + ans[0].lower() + ans[1:])]
        add("oasst1", msgs)
    for _ in range(10):
        q, why, ans = math_item()
        add("oasst1", [u(q), a(why + " The answer is %s." % ans), u("Can you check it again?"), a("Yes: " + why)])
    rng.shuffle(recs)
    write(os.path.join(OUT, "less", "pool.jsonl"), "".join(json.dumps(r) + "\n" for r in recs),
          "instruction pool (LESS-style: flan_v2, cot, dolly, oasst1)")
    return len(recs), counters


def main():
    rng = random.Random(20251104)
    arc()
    csqa(rng)
    squad()
    n, c = pool(rng)
    print("make_handmade: arc 60, csqa 60, squad %d questions, pool %d records %s" %
          (sum(len(x[2]) for x in squad_text.ARTICLES), n, c))


if __name__ == "__main__":
    main()
