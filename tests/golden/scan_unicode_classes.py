#!/usr/bin/env python3
"""Find where our tokenizer and HF `tokenizers` disagree because of Unicode table versions.

    /opt/oracle/bin/python tests/golden/scan_unicode_classes.py build/benchmarks/bench_tokenizer

1. Every code point in probe strings ("aXa X1 XXXX\\nX's": letter/digit/other classification
   of the pre-tokenizer regex) through both, for the Llama 3.1 and Qwen3 files: prints the ranges
   that differ. Where PCRE2's tables are older than HF's Oniguruma, src/tok_regex.c widens
   \\p{L} / \\p{N} with the printed ranges.
2. Every combining mark (canonical class from Python's unicodedata) put in non-canonical order
   next to marks of other classes through HF's NFC: prints the marks HF does not reorder (its
   normalization tables are older): src/tok_text.c treats them as starters.
A correct build prints no ranges for part 1. Samples of every range are in the golden strings.
"""
import os
import subprocess
import sys
import tempfile
import unicodedata

from tokenizers import Tokenizer, normalizers

DATA = os.environ.get("CH_DATA", "/work/shared/data")


def ranges(cps):
    rs = []
    for c in sorted(cps):
        if rs and rs[-1][1] == c - 1:
            rs[-1][1] = c
        else:
            rs.append([c, c])
    return ",".join(f"{a:#x}-{b:#x}" if a != b else f"{a:#x}" for a, b in rs)


def main():
    tool = sys.argv[1]
    cps = [c for c in range(0x80, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts = [f"a{chr(c)}a {chr(c)}1 {chr(c) * 4}\n{chr(c)}'s" for c in cps]
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(b"\0".join(t.encode() for t in texts))
    for fam in ["llama3_1", "qwen3"]:
        path = os.path.join(DATA, "tokenizers", fam, "tokenizer.json")
        ours = subprocess.run([tool, "--ids", path, f.name], check=True, capture_output=True, text=True).stdout.split("\n")
        hf = Tokenizer.from_file(path).encode_batch(texts, add_special_tokens=False)
        bad = [cps[i] for i in range(len(cps)) if [int(x) for x in ours[i].split()] != hf[i].ids]
        print(f"{fam}: {len(bad)} code points differ: {ranges(bad)}")
    os.unlink(f.name)
    nfc = normalizers.NFC()
    bad = []
    for c in range(0x300, 0x110000):
        ch = chr(c)
        k = unicodedata.combining(ch) if not 0xD800 <= c <= 0xDFFF else 0
        if not k or unicodedata.normalize("NFD", ch) != ch:
            continue
        for other in ["\u0301", "\u0316", "\u05b0", "\u0334"]:
            ko = unicodedata.combining(other)
            if ko != k and nfc.normalize_str(other + ch if ko > k else ch + other) != (ch + other if ko > k else other + ch):
                bad.append(c)
                break
    print(f"HF NFC does not reorder {len(bad)} marks (Unicode {unicodedata.unidata_version} classes): {ranges(bad)}")


if __name__ == "__main__":
    main()
