#!/usr/bin/env python3
"""SentencePiece-style BPE tokenizers (Metaspace / Prepend+Replace normalizers, byte_fallback, unk)
and the ids Hugging Face `tokenizers` / transformers give for them, for tests/test_tokenizer.c.

Run with a venv holding tokenizers, transformers, sentencepiece and protobuf (no torch):
    python3 -m venv /tmp/venv-tok && /tmp/venv-tok/bin/pip install tokenizers transformers sentencepiece protobuf
    /tmp/venv-tok/bin/python tests/golden/make_sp_tokenizer_golden.py [DATA_DIR]
DATA_DIR defaults to /work/shared/data (models/stories260K-hf/, the corpora make_tokenizer_golden.py reads).
Reference versions: transformers 5.25.0, tokenizers 0.23.3.

Writes
  tests/data/tokenizers/stories260k/{tokenizer.json,tokenizer_config.json}.gz
      transformers' LlamaTokenizer.from_pretrained(stories260K-hf) (its SentencePiece tokenizer.model,
      512 pieces) saved with save_pretrained: Metaspace(prepend_scheme first), byte_fallback.
  tests/data/tokenizers/stories260k_legacy/{tokenizer.json,tokenizer_config.json}.gz
      the same vocabulary and merges in the layout transformers 4.x wrote for Llama-2 / TinyLlama /
      Mistral v0.1 (normalizer Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer, unk "<unk>",
      template "<s> $A"), with a Llama-2 hub style tokenizer_config.json (LlamaTokenizer, legacy false).
  tests/golden/tokenizer_stories260k.jsonl.gz, tokenizer_stories260k_legacy.jsonl.gz
      ids of Tokenizer.from_file for every string of make_tokenizer_golden.py's corpus (+ SP extras);
      the legacy one and the minis below for its first 2,000 strings of <= 120 bytes (+ SP extras).
  tests/golden/tokenizer_sp_<name>.json + .jsonl.gz: small tokenizers trained here with `tokenizers`
      (models.BPE(byte_fallback) + Metaspace, <0xNN> byte tokens) covering the other options.
  tests/golden/tokenizer_sp_config_variants.jsonl.gz: AutoTokenizer's ids for the stories260k
      directories with edited tokenizer_config.json (same format as tokenizer_config_variants).
  tests/data/tokenizers/<llama3_1|qwen3>/tokenizer_config.saved5.json: what
      AutoTokenizer.from_pretrained(...).save_pretrained(...) writes (transformers 5.x keys:
      backend, is_local, local_files_only, ...); the script checks AutoTokenizer on tokenizer.json +
      that file gives tokenizer.json's ids.
"""
import base64
import gzip
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_tokenizer_golden as mtg  # noqa: E402  (its corpus generators)

from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402

DATA = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"
mtg.DATA = DATA
ROOT = os.path.dirname(os.path.dirname(HERE))
TDATA = os.path.join(ROOT, "tests", "data", "tokenizers")
STORIES = os.path.join(DATA, "models", "stories260K-hf")
MODEL_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}

SP_EXTRA = ["<s>", "</s>", "<unk>", "<s>hello", "a<s>b", " <s> x", "x </s>", "<s><s>", "\u2581", "\u2581\u2581x",
            " \u2581 x", "<0x41>", "<0x0A> text", "  two leading", "trailing  ", " ", "   ", "a  b   c", "\t\ttab",
            "\n\nnl", "once upon a time", "Once Upon A Time", "ZZZZZ qqqq", "\u00e9\u00e8\u00ea", "\u4e2d\u6587 \U0001f600",
            "<bos>hi<eos>", "<start_of_turn>user\nhi<end_of_turn>", "<lst>a", "a <lst>b", "x<rst>  y", "<nrm> e\u0301",
            "Hello\u00a0world", "caf\u00e9 cafe\u0301"]


def texts_all():
    t = [s.encode("utf-8", "surrogatepass") for s in mtg.dataset_strings() + mtg.hard_strings() + mtg.random_strings(400, 7)
         + mtg.unicode_version_strings() + mtg.random_unicode_strings(600, 3)]
    t += mtg.invalid_bytes(200, 11)
    return [s.encode() for s in SP_EXTRA] + t


def texts_small(all_texts, n=2000):
    """The SP extras and the first n short corpus strings: >= 2,000 strings, small golden files."""
    return [s.encode() for s in SP_EXTRA] + [t for t in all_texts[len(SP_EXTRA):] if len(t) <= 120][:n]


def write_golden(tok, texts, path):
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
        for raw in texts:
            s = raw.decode("utf-8", errors="replace")
            rec = {"b64": base64.b64encode(raw).decode(), "ids": tok.encode(s, add_special_tokens=False).ids,
                   "ids_special": tok.encode(s, add_special_tokens=True).ids}
            f.write((json.dumps(rec, separators=(",", ":")) + "\n").encode())
    print(f"{path}: {len(texts)} strings")


def gz_write(path, text):
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
        f.write(text.encode())


def save_family(name, tok_json_text, cfg, source):
    d = os.path.join(TDATA, name)
    os.makedirs(d, exist_ok=True)
    gz_write(os.path.join(d, "tokenizer.json.gz"), tok_json_text)
    gz_write(os.path.join(d, "tokenizer_config.json.gz"), json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    with open(os.path.join(d, "SOURCE.txt"), "w", encoding="utf-8") as f:
        f.write(source)


def stories(texts):
    from transformers import LlamaTokenizer
    tmp = tempfile.mkdtemp()
    tok = LlamaTokenizer.from_pretrained(STORIES)
    tok.save_pretrained(tmp)
    with open(os.path.join(tmp, "tokenizer.json"), encoding="utf-8") as f:
        tj = f.read()
    with open(os.path.join(tmp, "tokenizer_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    src = ("Made by tests/golden/make_sp_tokenizer_golden.py: transformers LlamaTokenizer.from_pretrained(\n"
           "/work/shared/data/models/stories260K-hf) (its SentencePiece tokenizer.model, 512 pieces, MIT, see that\n"
           "folder's SOURCE.txt), then save_pretrained; both files gzip'd.\n")
    save_family("stories260k", tj, cfg, src)
    write_golden(Tokenizer.from_str(tj), texts, os.path.join(HERE, "tokenizer_stories260k.jsonl.gz"))

    # the Llama-2 layout of transformers 4.x (LlamaConverter, legacy): Prepend + Replace, no pre-tokenizer
    lj = json.loads(tj)
    lj["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    lj["pre_tokenizer"] = None
    lj["model"]["unk_token"] = "<unk>"
    lj["post_processor"] = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                                     {"Sequence": {"id": "A", "type_id": 0}}],
                            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    ljt = json.dumps(lj, ensure_ascii=False)
    lcfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
            "pad_token": None, "clean_up_tokenization_spaces": False, "legacy": False, "model_max_length": 2048,
            "padding_side": "right", "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer"}
    save_family("stories260k_legacy", ljt, lcfg,
                "Made by tests/golden/make_sp_tokenizer_golden.py from ../stories260k: the same vocabulary and merges in\n"
                "the layout transformers 4.x wrote for Llama-2 / TinyLlama (normalizer Prepend + Replace, no\n"
                "pre-tokenizer, unk <unk>, template '<s> $A') and a Llama-2 hub style tokenizer_config.json.\n")
    write_golden(Tokenizer.from_str(ljt), texts_small(texts), os.path.join(HERE, "tokenizer_stories260k_legacy.jsonl.gz"))
    return tj, cfg, ljt, lcfg


def trained(corpus):
    """A Metaspace BPE trained here; vocab: <unk> <s> </s>, the 256 <0xNN> tokens, then the merges'."""
    t = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    t.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always", split=True)
    t.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=900, special_tokens=["<unk>", "<s>", "</s>"],
                                                      limit_alphabet=120, show_progress=False))
    j = json.loads(t.to_str())
    old = j["model"]["vocab"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for tok, _ in sorted(old.items(), key=lambda kv: kv[1]):
        if tok not in vocab:
            vocab[tok] = len(vocab)
    j["model"]["vocab"] = vocab
    j["added_tokens"] = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])]
    return j


def bos_template(tok, bos="<s>", eos=None):
    single = f"{bos} $A" + (f" {eos}" if eos else "")
    sp = [(bos, tok.token_to_id(bos))] + ([(eos, tok.token_to_id(eos))] if eos else [])
    return processors.TemplateProcessing(single=single, special_tokens=sp)


def minis(all_texts, small):
    corpus = [t.decode("utf-8", "replace") for t in all_texts[:1500]]
    base = trained(corpus)
    out = {}

    def make(name, edit):
        j = json.loads(json.dumps(base))
        edit(j)
        tok = Tokenizer.from_str(json.dumps(j, ensure_ascii=False))
        return name, tok

    # Metaspace first + split, NFC, added tokens with lstrip / rstrip / normalized, "<s> $A </s>"
    def first_split(j):
        j["normalizer"] = {"type": "NFC"}
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}
    name, tok = make("first_split", first_split)
    tok.add_tokens([AddedToken("<lst>", lstrip=True), AddedToken("<rst>", rstrip=True), AddedToken("<nrm>", normalized=True),
                    AddedToken("e\u0301t\u00e9", normalized=True)])
    tok.post_processor = bos_template(tok, "<s>", "</s>")
    out[name] = tok

    # Metaspace never, no split, byte tokens only for ASCII: other characters become one fused <unk>
    def never_unk(j):
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "never", "split": False}
        j["model"]["vocab"] = {k: v for k, v in j["model"]["vocab"].items()
                               if not (k.startswith("<0x") and len(k) == 6 and int(k[3:5], 16) >= 0x80)}
        keep = set(j["model"]["vocab"])
        j["model"]["merges"] = [m for m in j["model"]["merges"]
                                if m[0] in keep and m[1] in keep and m[0] + m[1] in keep]
    out.update([make("never_unk", never_unk)])

    # Metaspace always + split, no byte_fallback, unk not fused, ignore_merges, "a b" merges
    def always_nofuse(j):
        j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}]}
        j["model"].update(byte_fallback=False, fuse_unk=False, ignore_merges=True)
        j["model"]["merges"] = [" ".join(m) for m in j["model"]["merges"]]
    out.update([make("always_nofuse", always_nofuse)])

    # Gemma: Replace(" ", "▁") only, no pre-tokenizer, byte_fallback, its own special tokens, "<bos> $A"
    def gemma(j):
        j["normalizer"] = {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}
        j["pre_tokenizer"] = None
    name, tok = make("gemma", gemma)
    tok.add_special_tokens(["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"])
    tok.post_processor = bos_template(tok, "<bos>")
    out[name] = tok

    # the Llama-2 legacy layout: Prepend + Replace, no pre-tokenizer, "<s> $A"
    def legacy(j):
        j["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"}, {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
        j["pre_tokenizer"] = None
    name, tok = make("legacy", legacy)
    tok.post_processor = bos_template(tok, "<s>")
    out[name] = tok

    for name, tok in out.items():
        text = tok.to_str()
        with open(os.path.join(HERE, f"tokenizer_sp_{name}.json"), "w", encoding="utf-8") as f:
            f.write(text)
        write_golden(Tokenizer.from_str(text), small, os.path.join(HERE, f"tokenizer_sp_{name}.jsonl.gz"))

    # transformers' generic SentencePiece conversion (AutoTokenizer on a folder with tokenizer.model
    # only): Replace regex normalizers that emulate SentencePiece's whitespace rules, Metaspace always
    from transformers import AutoTokenizer
    tmp = tempfile.mkdtemp()
    shutil.copy(os.path.join(STORIES, "tokenizer.model"), tmp)
    AutoTokenizer.from_pretrained(tmp).save_pretrained(tmp)
    with open(os.path.join(tmp, "tokenizer.json"), encoding="utf-8") as f:
        text = f.read()
    with open(os.path.join(HERE, "tokenizer_sp_spm.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":")))
    write_golden(Tokenizer.from_str(text), small, os.path.join(HERE, "tokenizer_sp_spm.jsonl.gz"))


def model_dir(tj, cfg, edit, mc, where):
    shutil.rmtree(where, ignore_errors=True)
    os.makedirs(where)
    with open(os.path.join(where, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tj)
    cfg = dict(cfg)
    for k, v in edit.items():
        if v == "<delete>":
            cfg.pop(k, None)
        else:
            cfg[k] = v
    with open(os.path.join(where, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False)
    if mc is not None:
        with open(os.path.join(where, "config.json"), "w") as f:
            json.dump(mc, f)
    return where


# (name, family, tokenizer_config.json edit, config.json): transformers 5.25 in the comment
SP_VARIANTS = [
    ("stories_saved", "stories260k", {}, MODEL_CONFIG),                              # LlamaTokenizer: first
    ("stories_legacy_true", "stories260k", {"legacy": True}, None),                  # always
    ("stories_no_prefix", "stories260k", {"add_prefix_space": False}, None),         # never
    ("stories_backend", "stories260k", {"tokenizer_class": "TokenizersBackend"}, MODEL_CONFIG),  # the file
    ("legacy_hub", "stories260k_legacy", {}, MODEL_CONFIG),                          # rebuilt: first, no Prepend
    ("legacy_hub_legacy_true", "stories260k_legacy", {"legacy": True}, None),        # rebuilt: always
    ("legacy_no_class", "stories260k_legacy", {"tokenizer_class": "<delete>"}, MODEL_CONFIG),  # the file
]


def config_variants(fams, texts):
    from transformers import AutoTokenizer
    tmp = tempfile.mkdtemp()
    path = os.path.join(HERE, "tokenizer_sp_config_variants.jsonl.gz")
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
        for name, fam, edit, mc in SP_VARIANTS:
            tj, cfg = fams[fam]
            at = AutoTokenizer.from_pretrained(model_dir(tj, cfg, edit, mc, os.path.join(tmp, name)))
            tok = Tokenizer.from_str(tj)
            f.write((json.dumps({"variant": name, "family": fam, "edit": edit, "model_config": mc}) + "\n").encode())
            differ = 0
            for raw in texts:
                s = raw.decode("utf-8", errors="replace")
                rec = {"variant": name, "b64": base64.b64encode(raw).decode(),
                       "ids": at.encode(s, add_special_tokens=False), "ids_special": at.encode(s, add_special_tokens=True)}
                differ += rec["ids_special"] != tok.encode(s, add_special_tokens=True).ids
                f.write((json.dumps(rec, separators=(",", ":")) + "\n").encode())
            print(f"{name}: {type(at).__name__}, {differ} of {len(texts)} differ from tokenizer.json alone")
    print(f"{path}: {len(SP_VARIANTS)} variants")


def saved_configs(texts):
    """transformers 5.x save_pretrained of the real Llama 3.1 / Qwen3 tokenizers: the keys it writes."""
    from transformers import AutoTokenizer
    tmp = tempfile.mkdtemp()
    for fam in mtg.FAMILIES:
        src = os.path.join(DATA, "tokenizers", fam)
        out = os.path.join(tmp, fam)
        AutoTokenizer.from_pretrained(src).save_pretrained(out)
        with open(os.path.join(out, "tokenizer_config.json"), encoding="utf-8") as f:
            saved = f.read()
        with open(os.path.join(TDATA, fam, "tokenizer_config.saved5.json"), "w", encoding="utf-8") as f:
            f.write(saved)
        file_tok, saved_tok = Tokenizer.from_file(os.path.join(src, "tokenizer.json")), Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
        d = os.path.join(tmp, fam + "_mix")
        os.makedirs(d)
        shutil.copy(os.path.join(src, "tokenizer.json"), d)
        shutil.copy(os.path.join(out, "tokenizer_config.json"), d)
        at = AutoTokenizer.from_pretrained(d)
        bad = 0
        for raw in texts:
            s = raw.decode("utf-8", errors="replace")
            for sp in (False, True):
                want = file_tok.encode(s, add_special_tokens=sp).ids
                bad += want != saved_tok.encode(s, add_special_tokens=sp).ids or want != at.encode(s, add_special_tokens=sp)
        print(f"{fam}: saved tokenizer_config.json keys {sorted(json.loads(saved))}; {bad} of {2 * len(texts)} differ")
        if bad:
            sys.exit(f"{fam}: the saved files change ids")


def main():
    all_texts = texts_all()
    small = texts_small(all_texts)
    tj, cfg, ljt, lcfg = stories(all_texts)
    minis(all_texts, small)
    config_variants({"stories260k": (tj, cfg), "stories260k_legacy": (ljt, lcfg)}, small[:250])
    saved_configs(small)


if __name__ == "__main__":
    main()
