#!/usr/bin/python3
"""Cut the small real-data samples of data/demo from the full original datasets.

  data/demo/make_samples.py [DATA_ROOT]     (default /work/shared/data)

DATA_ROOT holds gsm8k/, mmlu/data/{dev,val}/ and bbh/{bbh,cot-prompts}/ as published upstream
(see each SOURCE.txt). The samples keep the original file formats byte for byte where a prefix
suffices (GSM8K lines, whole MMLU files, CoT prompt files); BBH task files are re-serialized
with json.dumps, which reproduces the upstream bytes exactly for the full files. Standard
library only; deterministic (first records, no sampling)."""
import json
import os
import shutil
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"
OUT = os.path.dirname(os.path.abspath(__file__))
GSM8K_N = 100
MMLU_SUBJECTS = ["professional_medicine", "professional_accounting", "college_medicine",  # professional class
                 "high_school_physics", "abstract_algebra", "high_school_world_history"]  # target tasks
BBH_TASKS = ["date_understanding", "boolean_expressions", "logical_deduction_three_objects", "causal_judgement"]
BBH_N = 20


def source(dst_dir, src_dir, note):
    os.makedirs(dst_dir, exist_ok=True)
    shutil.copyfile(os.path.join(src_dir, "LICENSE"), os.path.join(dst_dir, "LICENSE"))
    text = open(os.path.join(src_dir, "SOURCE.txt"), encoding="utf-8").read().rstrip("\n")
    with open(os.path.join(dst_dir, "SOURCE.txt"), "w", encoding="utf-8") as f:
        f.write(text + "\n\nThis folder is a small sample of it, cut by data/demo/make_samples.py: " + note + "\n")


def main():
    # GSM8K: the first GSM8K_N lines of test.jsonl
    d = os.path.join(OUT, "gsm8k")
    source(d, os.path.join(ROOT, "gsm8k"), "the first %d lines of test.jsonl, unchanged." % GSM8K_N)
    with open(os.path.join(ROOT, "gsm8k", "test.jsonl"), "rb") as f:
        lines = f.readlines()[:GSM8K_N]
    open(os.path.join(d, "test.jsonl"), "wb").writelines(lines)

    # MMLU: whole dev and val files of a few subjects
    d = os.path.join(OUT, "mmlu")
    source(d, os.path.join(ROOT, "mmlu"), "the dev and val files of %s, unchanged." % ", ".join(MMLU_SUBJECTS))
    for split in ("dev", "val"):
        os.makedirs(os.path.join(d, "data", split), exist_ok=True)
        for s in MMLU_SUBJECTS:
            name = "%s_%s.csv" % (s, split)
            shutil.copyfile(os.path.join(ROOT, "mmlu", "data", split, name), os.path.join(d, "data", split, name))

    # BBH: the first BBH_N examples of a few tasks, and their 3-shot CoT prompts
    d = os.path.join(OUT, "bbh")
    source(d, os.path.join(ROOT, "bbh"), "the first %d examples of %s (same JSON shape, re-serialized "
           "with json.dumps) and their cot-prompts, unchanged." % (BBH_N, ", ".join(BBH_TASKS)))
    os.makedirs(os.path.join(d, "bbh"), exist_ok=True)
    os.makedirs(os.path.join(d, "cot-prompts"), exist_ok=True)
    for t in BBH_TASKS:
        src = os.path.join(ROOT, "bbh", "bbh", t + ".json")
        raw = open(src, encoding="utf-8").read()
        obj = json.loads(raw)
        assert json.dumps(obj) == raw, "upstream %s is not json.dumps-shaped" % src
        obj["examples"] = obj["examples"][:BBH_N]
        open(os.path.join(d, "bbh", t + ".json"), "w", encoding="utf-8").write(json.dumps(obj))
        shutil.copyfile(os.path.join(ROOT, "bbh", "cot-prompts", t + ".txt"), os.path.join(d, "cot-prompts", t + ".txt"))


if __name__ == "__main__":
    main()
