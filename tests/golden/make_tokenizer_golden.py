#!/usr/bin/env python3
"""Record the token ids Hugging Face `tokenizers` gives for the real Llama 3.1 and Qwen3 tokenizer
files, so tests/test_tokenizer.c can check ours id for id without Python.

Run with the oracle venv (needs `tokenizers` and `transformers`):
    /opt/oracle/bin/python tests/golden/make_tokenizer_golden.py [DATA_DIR]
DATA_DIR defaults to /work/shared/data (gsm8k/, mmlu/, bbh/, tokenizers/<family>/).

Writes tests/golden/tokenizer_<family>.jsonl.gz, one record per line:
    {"b64": <raw input bytes, base64>, "ids": [...add_special_tokens=False], "ids_special": [...True]}
and tests/golden/tokenizer_chat.jsonl.gz with {"family", "style", "messages", "gen", "ids"} from
transformers' apply_chat_template.

tokenizer_config.json: the ids above come from tokenizer.json alone. The script checks that
transformers' AutoTokenizer.from_pretrained on the family's directory (tokenizer.json + the
committed tokenizer_config.json, with and without a config.json) gives the same ids for every
string, and stops if it does not (then these goldens would have to be recorded through
AutoTokenizer). tests/golden/tokenizer_config_variants.jsonl.gz records AutoTokenizer's ids for
edited configs (the keys the engine honours or checks); its lines are
    {"variant", "family", "edit": {key or "a/b/c" path: value, or "<delete>"}, "model_config"}
    {"variant", "b64", "ids", "ids_special"}

Invalid UTF-8: HF's Python API takes str, so inputs that are not valid UTF-8 are given to HF as
bytes.decode("utf-8", errors="replace") (each maximal ill-formed subpart becomes U+FFFD), and the raw
bytes are recorded: ch_tok_encode promises the same ids for the raw bytes.
"""
import base64
import csv
import glob
import gzip
import json
import os
import random
import sys

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"
FAMILIES = ["llama3_1", "qwen3"]


def dataset_strings():
    out = []
    with open(os.path.join(DATA, "gsm8k/test.jsonl"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 500:
                break
            r = json.loads(line)
            out.append(r["question"])
            out.append(r["answer"])
    for path in sorted(glob.glob(os.path.join(DATA, "mmlu/data/test/*.csv")))[:57]:
        with open(path, encoding="utf-8", newline="") as f:
            for j, row in enumerate(csv.reader(f)):
                if j >= 10:
                    break
                out.append(row[0])
                out.append(" ".join(row[1:5]))
    for path in sorted(glob.glob(os.path.join(DATA, "bbh/bbh/*.json"))):
        with open(path, encoding="utf-8") as f:
            ex = json.load(f)["examples"]
        for e in ex[:12]:
            out.append(e["input"])
    for path in sorted(glob.glob(os.path.join(DATA, "bbh/cot-prompts/*.txt")))[:10]:
        with open(path, encoding="utf-8") as f:
            out.append(f.read())
    return out


def hard_strings():
    s = ["", " ", "  ", "\t", "\n", "\r\n", "\r", " \n", "\n\n\n", "a", "A", "hello world",
         "Hello,   world!\n\n  Bye.", "   leading", "trailing   ", "tabs\t\tand\t spaces \t",
         "line1\r\nline2\r\n\r\nline3", "mixed \r\n \n\r  \t\n", "\u00a0nbsp\u00a0\u00a0x", "\u3000ideographic space",
         "\u2028line sep\u2029para", "\x0b\x0c vertical", "end with space ", "end with newline\n"]
    s += ["1" * n for n in range(1, 20)]
    s += [" " + "9" * n + " x" for n in range(1, 12)]
    s += ["3.14159265358979", "1,234,567.89", "$1000000", "2026-11-24T19:46:45Z", "0x7fffffff",
          "١٢٣٤٥ Arabic-Indic digits", "४२ Devanagari digits", "Ⅻ roman ½ ¾ ²³", "𝟙𝟚𝟛 math digits"]
    for c in ["s", "t", "re", "ve", "m", "ll", "d"]:
        for v in [c, c.upper(), c.capitalize()]:
            s += [f"it'{v}", f"I'{v} here", f"'{v}", f"x '{v} y", f"don'{v}'{v}"]
    s += ["I'M SURE YOU'LL BE FINE, WE'RE HERE", "O'Neil's", "rock 'n' roll", "'''", "can\u2019t", "l'ſ",
          "it'ſ long s", "it'K kelvin", "ÉCOLE'S"]
    s += ["👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "👍🏽 tone", "emoji😀😃😄😁", "❤️ heart", "🇩🇪🇫🇷 flags",
          "中文分词测试，包含标点。", "日本語のテキストです。カタカナ", "한국어 텍스트입니다", "ภาษาไทยไม่มีช่องว่าง",
          "العربية نص تجريبي", "עברית טקסט", "Ελληνικά κείμενο", "Русский текст, ёЁ", "हिन्दी पाठ",
          "e\u0301 combining", "\u0065\u0301\u0302\u0303", "a\u0308o\u0308u\u0308", "\u1e9b\u0323",
          "Å vs \u212b angstrom", "\u00c5\u0041\u030a", "ﬁ ligature ﬀ", "\uff21\uff22 fullwidth",
          "\u0915\u094d\u0937", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334alg\u0335o",
          "\ufeffBOM", "\u200b zero width \u200d joiner", "\U0001d400\U0001d401 bold", "\U00010000 plane1",
          "\U0010ffff max", "\ud7ff\ue000 edges", "\x00 nul inside \x00", "\x01\x02\x1f controls\x7f",
          "﷽", "ǅ titlecase", "ß straße STRASSE", "İstanbul ı", "ﬃ"]
    s += ["a" * 3000, "ab" * 2000, "x" + "yz" * 1500, "Supercalifragilisticexpialidocious" * 50,
          "🙂" * 500, "中" * 1500, " " * 1000, "\n" * 500, "!" * 700, "a b " * 800,
          "".join(chr(0x4e00 + (i * 7919) % 20000) for i in range(2000))]
    for tok in ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
                "<|reserved_special_token_5|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>",
                "<think>", "</think>", "<tool_call>", "<|fim_prefix|>"]:
        s += [tok, f"hello{tok}world", f" {tok} ", f"{tok}{tok}", f"\n{tok}\n", tok[:-1], tok[1:],
              f"a{tok[:-2]}{tok}"]
    s += ["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
          "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"]
    return s


def random_strings(n, seed):
    rng = random.Random(seed)
    pool = (list("abcxyzABCXYZ0123456789") + [" ", "  ", "\t", "\n", "\r\n", "'", "'s", "'LL", ".", ",",
            "!?", "$", "-", "_", "(", ")", "\"", "é", "e\u0301", "ß", "中", "文", "😀", "‍", "\u0301",
            "ก", "ع", "\u00a0", "\u3000", "１", "٣", "<|im_end|>", "<|eot_id|>", "<think>", "Ⅻ", "ǅ"])
    out = []
    for _ in range(n):
        k = rng.randint(1, 40)
        out.append("".join(rng.choice(pool) for _ in range(k)))
    return out


# Where Unicode table versions differ (see scan_unicode_classes.py): letters and digits newer than
# PCRE2 10.42's tables, U+180E (white space to PCRE2, not to HF), marks HF's NFC does not reorder.
NEW_L = [(0x1C89, 0x1C8A), (0xA7CB, 0xA7CD), (0x105C0, 0x105F3), (0x10D4A, 0x10D65), (0x11380, 0x11389),
         (0x11BC0, 0x11BE0), (0x11F04, 0x11F10), (0x13460, 0x143FA), (0x16100, 0x1611D), (0x16D40, 0x16D6C),
         (0x1E030, 0x1E06D), (0x1E5D0, 0x1E5ED), (0x2EBF0, 0x2EE5D), (0x31350, 0x323AF)]
NEW_N = [(0x10D40, 0x10D49), (0x116D0, 0x116E3), (0x11BF0, 0x11BF9), (0x11F50, 0x11F59), (0x16130, 0x16139),
         (0x16D70, 0x16D79), (0x1CCF0, 0x1CCF9), (0x1D2C0, 0x1D2D3), (0x1E4F0, 0x1E4F9), (0x1E5F1, 0x1E5FA)]
HF_STARTERS = [0x7FD, 0x898, 0x8CA, 0x9FE, 0xC3C, 0xD3B, 0xEBA, 0x1715, 0x1ABF, 0x1AC3, 0x1DF6, 0xA82C,
               0x10D24, 0x10EAB, 0x10EFD, 0x10F46, 0x10F82, 0x11070, 0x1133B, 0x1145E, 0x11839, 0x1193D,
               0x11943, 0x119E0, 0x11A34, 0x11A47, 0x11A99, 0x11D42, 0x11D44, 0x11D97, 0x11F41, 0x16FF0,
               0x1E08F, 0x1E130, 0x1E2AE, 0x1E2EC, 0x1E4EC]


def unicode_version_strings():
    out = ["a\u180eb", " \u180e 's", "x\u180e\u180e\n", "\u180e'll"]
    for a, b in NEW_L:
        out.append(f"{chr(a)}'s {chr(b)}{chr(a)} a{chr((a + b) // 2)}")
    for a, b in NEW_N:
        out.append(f"{chr(a)}'s {chr(b) * 5} x{chr(a)}1")
    for c in HF_STARTERS:
        out.append(f"e\u0301{chr(c)}\u0316 a\u0316{chr(c)}\u0301 \u05b0{chr(c)}\u0334{chr(c)}")
    return out


def random_unicode_strings(n, seed):
    """Random mixes over all planes with the characters regexes and NFC care about."""
    rng = random.Random(seed)
    pool = (list("aZ09 .,;'!?-_") + ["\u180e", "\u200b", "\ufeff", "\x85", "\xa0", "\u2007", "\u202f",
            "\u3000", "\u1680", "\u2028", "\x1c", "\x1f", "\x0b", "\x0c", "\r", "\n", "\t", "'s", "'S",
            "'LL", "'\u017f", "'K", "\u01c5", "\xdf", "\u0130", "\u0301", "\u0316", "<|im_end|>",
            "<|eot_id|>", "<think>", "<|im_start|"])

    def cp():
        r = rng.random()
        if r < 0.3:
            return chr(rng.randint(0x80, 0x2FFF))
        if r < 0.5:
            return chr(rng.randint(0x3000, 0xD7FF))
        if r < 0.6:
            return chr(rng.randint(0xE000, 0xFFFF))
        if r < 0.7:
            return chr(rng.randint(0x10000, 0x3FFFF))
        return chr(rng.randint(0xE0000, 0x10FFFF)) if r < 0.72 else rng.choice(pool)

    return ["".join(cp() if rng.random() < 0.5 else rng.choice(pool) for _ in range(rng.randint(1, 30)))
            for _ in range(n)]


def invalid_bytes(n, seed):
    rng = random.Random(seed)
    fixed = [b"\xff", b"\xc3", b"abc\x80def", b"\xe2\x82", b"\xe2\x82x", b"\xf0\x9f\x98", b"\xed\xa0\x80",
             b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"caf\xe9", b" \xff\xfe \xfe\xff ",
             b"\xc3\x28", b"\xa0\xa1", b"\xe0\x80\x80", b"\xef\xbf\xbf", b"\xf0\x90\x80", b"12\xff34",
             b"'s\x80'll", "<|im_end|>".encode() + b"\xff" + "<|eot_id|>".encode()]
    out = list(fixed)
    for _ in range(n):
        k = rng.randint(1, 24)
        b = bytearray()
        for _ in range(k):
            r = rng.random()
            if r < 0.4:
                b.append(rng.randint(0x80, 0xff))
            elif r < 0.7:
                b += rng.choice(["é", "中", "😀", "a", " ", "1", "\n"]).encode()
            else:
                b.append(rng.randint(0x20, 0x7e))
        out.append(bytes(b))
    return out


def main():
    texts = [t.encode("utf-8", "surrogatepass") for t in dataset_strings() + hard_strings() + random_strings(400, 7)
             + unicode_version_strings() + random_unicode_strings(600, 3)]
    texts += invalid_bytes(200, 11)
    for fam in FAMILIES:
        tok = Tokenizer.from_file(os.path.join(DATA, "tokenizers", fam, "tokenizer.json"))
        path = os.path.join(HERE, f"tokenizer_{fam}.jsonl.gz")
        with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
            for raw in texts:
                s = raw.decode("utf-8", errors="replace")
                rec = {"b64": base64.b64encode(raw).decode(),
                       "ids": tok.encode(s, add_special_tokens=False).ids,
                       "ids_special": tok.encode(s, add_special_tokens=True).ids}
                f.write((json.dumps(rec, separators=(",", ":")) + "\n").encode())
        print(f"{path}: {len(texts)} strings")
    check_auto_equals_file(texts)
    write_config_variants()
    write_chat()
    write_mini(texts)


# config.json of a model of each family, as far as AutoTokenizer and the engine read it
MODEL_CONFIG = {"llama3_1": {"architectures": ["LlamaForCausalLM"], "model_type": "llama"},
                "qwen3": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}}


def model_dir(fam, edit, model_config, where):
    """DIR with the family's tokenizer.json, its tokenizer_config.json edited, and config.json."""
    import shutil
    shutil.rmtree(where, ignore_errors=True)
    os.makedirs(where)
    src = os.path.join(DATA, "tokenizers", fam)
    shutil.copy(os.path.join(src, "tokenizer.json"), where)
    with open(os.path.join(src, "tokenizer_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    for key, value in edit.items():
        *parents, last = key.split("/")
        node = cfg
        for p in parents:
            node = node[p]
        if value == "<delete>":
            del node[last]
        else:
            node[last] = value
    with open(os.path.join(where, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False)
    if model_config is not None:
        with open(os.path.join(where, "config.json"), "w", encoding="utf-8") as f:
            json.dump(model_config, f)
    return where


def check_auto_equals_file(texts):
    """The committed tokenizer_config.json files change no id (transformers 5.24: they do not)."""
    import tempfile
    from transformers import AutoTokenizer

    tmp = tempfile.mkdtemp()
    for fam in FAMILIES:
        tok = Tokenizer.from_file(os.path.join(DATA, "tokenizers", fam, "tokenizer.json"))
        for mc in [None, MODEL_CONFIG[fam]]:
            at = AutoTokenizer.from_pretrained(model_dir(fam, {}, mc, os.path.join(tmp, fam)))
            bad = 0
            for raw in texts:
                s = raw.decode("utf-8", errors="replace")
                for sp in (False, True):
                    bad += tok.encode(s, add_special_tokens=sp).ids != at.encode(s, add_special_tokens=sp)
            print(f"{fam}: AutoTokenizer ({type(at).__name__}, config.json: {mc is not None}) vs tokenizer.json: "
                  f"{bad} of {2 * len(texts)} encodings differ")
            if bad:
                sys.exit("the committed tokenizer_config.json changes ids: record the goldens through AutoTokenizer")


# (name, family, tokenizer_config.json edit, config.json); what transformers does is in the comment
CONFIG_VARIANTS = [
    ("llama3_1_model_dir", "llama3_1", {}, MODEL_CONFIG["llama3_1"]),      # TokenizersBackend
    ("qwen3_model_dir", "qwen3", {}, MODEL_CONFIG["qwen3"]),               # Qwen2Tokenizer
    ("qwen3_add_prefix_space", "qwen3", {"add_prefix_space": True}, None),  # its ByteLevel gets a prefix space
    ("llama3_1_add_prefix_space", "llama3_1", {"add_prefix_space": True}, None),  # ignored
    ("llama3_1_no_bos_add_eos", "llama3_1", {"add_bos_token": False, "add_eos_token": True},  # dropped
     MODEL_CONFIG["llama3_1"]),
    ("qwen3_add_bos_eos", "qwen3", {"add_bos_token": True, "bos_token": "<|endoftext|>", "add_eos_token": True},
     None),                                                                 # dropped
    ("qwen3_no_added_tokens_decoder", "qwen3", {"added_tokens_decoder": "<delete>"},  # tokenizer.json's tokens
     MODEL_CONFIG["qwen3"]),
    ("qwen3_as_fast", "qwen3", {"tokenizer_class": "PreTrainedTokenizerFast"}, None),  # TokenizersBackend
    ("llama3_1_llama_fast", "llama3_1", {"tokenizer_class": "LlamaTokenizerFast", "legacy": False}, None),
]


def write_config_variants():
    import tempfile
    from transformers import AutoTokenizer

    texts = [t.encode("utf-8", "surrogatepass") for t in hard_strings() + random_strings(150, 5) if len(t) <= 200]
    texts += [b"Hello world 12345", b"  two spaces", b"<|im_start|>user\nhi<|im_end|>", b"a <|eot_id|> b"]
    tmp = tempfile.mkdtemp()
    path = os.path.join(HERE, "tokenizer_config_variants.jsonl.gz")
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
        for name, fam, edit, mc in CONFIG_VARIANTS:
            at = AutoTokenizer.from_pretrained(model_dir(fam, edit, mc, os.path.join(tmp, name)))
            tok = Tokenizer.from_file(os.path.join(DATA, "tokenizers", fam, "tokenizer.json"))
            head = {"variant": name, "family": fam, "edit": edit, "model_config": mc}
            f.write((json.dumps(head, ensure_ascii=False) + "\n").encode())
            differ = 0
            for raw in texts:
                s = raw.decode("utf-8", errors="replace")
                rec = {"variant": name, "b64": base64.b64encode(raw).decode(),
                       "ids": at.encode(s, add_special_tokens=False), "ids_special": at.encode(s, add_special_tokens=True)}
                differ += rec["ids_special"] != tok.encode(s, add_special_tokens=True).ids
                f.write((json.dumps(rec, separators=(",", ":")) + "\n").encode())
            print(f"{name}: {type(at).__name__}, {differ} of {len(texts)} differ from tokenizer.json alone")
    print(f"{path}: {len(CONFIG_VARIANTS)} variants")


def write_mini(texts):
    """Two small tokenizers trained here, configured with the options the real files do not use
    (ByteLevel use_regex/add_prefix_space, Split String/invert/other behaviors, lstrip/rstrip and
    normalized added tokens, a template with a suffix, "a b" merges with ignore_merges)."""
    from tokenizers import AddedToken, Regex, models, normalizers, pre_tokenizers, processors, trainers

    corpus = [t.decode("utf-8", "replace") for t in texts[:1500]]
    variants = {}
    a = Tokenizer(models.BPE())
    a.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    a.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=700, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                      show_progress=False))
    a.normalizer = normalizers.NFC()
    a.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\d+"), behavior="merged_with_next"),
        pre_tokenizers.Split("|", behavior="removed"),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    a.add_tokens([AddedToken("<lst>", lstrip=True), AddedToken("<rst>", rstrip=True),
                  AddedToken("<nrm>", normalized=True), AddedToken("e\u0301t\u00e9", normalized=True)])
    a.add_special_tokens(["<s>", "</s>"])
    a.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", a.token_to_id("<s>")), ("</s>", a.token_to_id("</s>"))])
    variants["a"] = json.loads(a.to_str())

    b = Tokenizer(models.BPE(ignore_merges=True))
    b.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    b.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                      show_progress=False))
    b.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[aeiou]"), behavior="contiguous", invert=True),
        pre_tokenizers.Split(Regex(r"\s"), behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex(r"x+"), behavior="isolated", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    b.post_processor = processors.ByteLevel()
    jb = json.loads(b.to_str())
    jb["model"]["merges"] = [" ".join(m) for m in jb["model"]["merges"]]  # the "a b" form
    variants["b"] = jb

    for name, js in variants.items():
        text = json.dumps(js, ensure_ascii=False, separators=(",", ":"))
        tok = Tokenizer.from_str(text)
        with open(os.path.join(HERE, f"tokenizer_mini_{name}.json"), "w", encoding="utf-8") as f:
            f.write(text)
        extra = ["a <lst>b", "a   <lst>  b", "x<rst>   y", "<rst>\n\tz", "<lst><lst> <rst> <rst>",
                 "caf\u00e9 <nrm> e\u0301t\u00e9", "et\u0301e\u0301t\u00e9", "12|34|| 5a6", "|||", "aeiou xxyx"]
        path = os.path.join(HERE, f"tokenizer_mini_{name}.jsonl.gz")
        with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
            for raw in [e.encode() for e in extra] + texts[1000:1200] + texts[-900:]:
                s = raw.decode("utf-8", errors="replace")
                rec = {"b64": base64.b64encode(raw).decode(),
                       "ids": tok.encode(s, add_special_tokens=False).ids,
                       "ids_special": tok.encode(s, add_special_tokens=True).ids}
                f.write((json.dumps(rec, separators=(",", ":")) + "\n").encode())
        print(f"{path}: mini tokenizer {name}")


def write_chat():
    from transformers import AutoTokenizer

    convs = [
        [{"role": "user", "content": "What is 2+2?"}],
        [{"role": "system", "content": "You are a careful math tutor."},
         {"role": "user", "content": "Janet has 16 eggs and eats 3. How many are left?"}],
        [{"role": "user", "content": "  padded question \n"},
         {"role": "assistant", "content": "An answer."},
         {"role": "user", "content": "Follow-up:\n\n- point one\n- point two"}],
        [{"role": "system", "content": "中文系统提示"}, {"role": "user", "content": "😀 emoji, tabs\t\tand <|eot_id|> text"}],
    ]
    path = os.path.join(HERE, "tokenizer_chat.jsonl.gz")
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
        for fam, style in [("llama3_1", "llama3"), ("qwen3", "chatml")]:
            at = AutoTokenizer.from_pretrained(os.path.join(DATA, "tokenizers", fam))
            for msgs in convs:
                for gen in [False, True]:
                    # Qwen3's template adds an empty <think> block to a final assistant turn; the
                    # conversations here end with a user turn, where it is plain ChatML.
                    ids = at.apply_chat_template(msgs, add_generation_prompt=gen, tokenize=True)
                    if hasattr(ids, "keys"):
                        ids = ids["input_ids"]
                    rec = {"family": fam, "style": style, "messages": msgs, "gen": int(gen), "ids": list(ids)}
                    f.write((json.dumps(rec, ensure_ascii=False) + "\n").encode())
    print(f"{path}: chat records")


if __name__ == "__main__":
    main()
