"""Record the token ids the rendering rule (docs/prepare.md, "The rendering rule") must give, from
the oracles, so tests/test_render.c and tests/test_render.sh check extract without Python oracles.

Run with the oracle venv (needs `tokenizers` and `transformers`):
    /tmp/venv/bin/python tests/golden/make_render_golden.py

Reads the committed tokenizers tests/data/tokenizers/<family>/ (decompressed into a temporary
directory). Writes
  tests/golden/render_cases.jsonl  the corpus: pool conversations (single- and multi-turn, a system
                                   message, one not ending with an assistant turn, one with padded
                                   contents) and prepared-style text records
  tests/golden/render_golden.jsonl one line per (family, rule, record):
        {"family", "template", "span", "cue", "id", "ids"}
The oracles, per rule (a `messages` record's prompt turns are every message but a final assistant one):
  plain, prompt  tokenizers' Tokenizer.from_file(tokenizer.json).encode(s, add_special_tokens=True)
                 with s = the prompt turns' contents joined by "\\n\\n", + "\\n" + cue when cue != "";
                 a text record: its text
  plain, full    the same over every turn, no cue
  chat, prompt   transformers' apply_chat_template(prompt turns, add_generation_prompt=True); a text
                 record as one user message
  chat, full     apply_chat_template(every turn, add_generation_prompt=False); a text record as under
                 chat, prompt
Qwen3 under chat, full is left out for conversations ending with an assistant turn: Qwen3's template
writes an empty <think></think> block into that turn, which the built-in ChatML does not
(src/tokenizer/tok_chat.c).
"""
import gzip
import json
import os
import shutil
import tempfile

from tokenizers import Tokenizer
from transformers import AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FAMILIES = ["llama3_1", "qwen3"]
RULES = [("plain", "prompt", "Answer:"), ("plain", "prompt", ""), ("plain", "full", "Answer:"),
         ("chat", "prompt", ""), ("chat", "full", "")]

CASES = [
    {"id": "pool_single", "messages": [
        {"role": "user", "content": "Give three tips for staying healthy."},
        {"role": "assistant", "content": "1. Eat well.\n2. Sleep enough.\n3. Move every day."}]},
    {"id": "pool_multi", "messages": [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And its population, roughly?"},
        {"role": "assistant", "content": "About 2.1 million in the city proper."}]},
    {"id": "pool_system", "messages": [
        {"role": "system", "content": "You are a careful math tutor."},
        {"role": "user", "content": "Janet has 16 eggs and eats 3. How many are left?"},
        {"role": "assistant", "content": "16 - 3 = 13. She has 13 eggs left."}]},
    {"id": "pool_open", "messages": [
        {"role": "user", "content": "Translate 'good morning' into German."},
        {"role": "assistant", "content": "Guten Morgen."},
        {"role": "user", "content": "And into French?"}]},
    {"id": "pool_padded", "messages": [
        {"role": "user", "content": "  Summarise: the cat sat on the mat. \n"},
        {"role": "assistant", "content": "\nA cat sat on a mat.  "}]},
    {"id": "text_math", "text": "Question: Tom has 5 apples and buys 7 more. How many apples does he have?\nAnswer:",
     "label": "math"},
    {"id": "text_unicode", "text": "Question: Quelle est la capitale du Japon ? 東京 or 京都?\nAnswer:",
     "label": "commonsense"},
]


def family_dir(tmp, fam):
    d = os.path.join(tmp, fam)
    os.makedirs(d)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        with gzip.open(os.path.join(ROOT, "tests/data/tokenizers", fam, name + ".gz"), "rb") as src, \
                open(os.path.join(d, name), "wb") as dst:
            shutil.copyfileobj(src, dst)
    return d


def turns(case, span):
    m = case["messages"]
    if span == "prompt" and m[-1]["role"] == "assistant":
        return m[:-1]
    return m


def render(case, rule, tok, at):
    template, span, cue = rule
    if template == "plain":
        if "text" in case:
            s = case["text"]
        else:
            s = "\n\n".join(t["content"] for t in turns(case, span))
            if span == "prompt" and cue:
                s += "\n" + cue
        return tok.encode(s, add_special_tokens=True).ids
    if "text" in case:
        msgs, gen = [{"role": "user", "content": case["text"]}], True
    else:
        msgs, gen = turns(case, span), span == "prompt"
    ids = at.apply_chat_template(msgs, add_generation_prompt=gen, tokenize=True)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return list(ids)


def main():
    with open(os.path.join(HERE, "render_cases.jsonl"), "w", encoding="utf-8") as f:
        for c in CASES:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    tmp = tempfile.mkdtemp()
    n = 0
    try:
        with open(os.path.join(HERE, "render_golden.jsonl"), "w", encoding="utf-8") as f:
            for fam in FAMILIES:
                d = family_dir(tmp, fam)
                tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
                at = AutoTokenizer.from_pretrained(d)
                for rule in RULES:
                    for c in CASES:
                        if fam == "qwen3" and rule[:2] == ("chat", "full") and "messages" in c \
                                and c["messages"][-1]["role"] == "assistant":
                            continue
                        ids = render(c, rule, tok, at)
                        rec = {"family": fam, "template": rule[0], "span": rule[1], "cue": rule[2], "id": c["id"],
                               "ids": ids}
                        f.write(json.dumps(rec) + "\n")
                        n += 1
    finally:
        shutil.rmtree(tmp)
    print(f"render_golden.jsonl: {n} records")


if __name__ == "__main__":
    main()
