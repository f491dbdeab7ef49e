#!/usr/bin/env python3
"""Write variants of real tokenizer.json files with other pipeline
components, so that every component the C tokenizer implements is checked
against HF `tokenizers`, not only those the four real files use
(Metaspace, Digits, Punctuation, Whitespace, WhitespaceSplit, Split
behaviors and invert, Strip/Lowercase/NFKC/NFKD/NFD/Prepend/Replace-regex
normalizers, added tokens with lstrip/rstrip/single_word/normalized,
RobertaProcessing/BertProcessing/Sequence post-processors, Metaspace and
Strip decoders, unknown tokens with fuse_unk).

usage: make_variants.py DIR_OF_BASES OUTDIR
  DIR_OF_BASES/tiny/tokenizer.json and DIR_OF_BASES/llama2/tokenizer.json are
  the bases; OUTDIR/variant-NAME/tokenizer.json are written.
"""
import json
import os
import sys

bases, outdir = sys.argv[1], sys.argv[2]
META = "\u2581"


def tmpl(first, last):
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": first[0], "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": last[0], "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {first[0]: {"id": first[0], "ids": [first[1]], "tokens": [first[0]]},
                               last[0]: {"id": last[0], "ids": [last[1]], "tokens": [last[0]]}}}


def added(content, id_, special, lstrip=False, rstrip=False, normalized=False, single_word=False):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip,
            "rstrip": rstrip, "normalized": normalized, "special": special}


EOT = ("<|endoftext|>", 0)
variants = {
    "bl-norm": ("tiny", {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFKC"}, {"type": "Lowercase"},
            {"type": "Strip", "strip_left": True, "strip_right": True},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "Punctuation", "behavior": "Isolated"},
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]},
        "post_processor": tmpl(EOT, EOT),
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "added": [added("hello", 4096, False, normalized=True, single_word=True),
                  added("<mask>", 4097, True, lstrip=True, rstrip=True),
                  added("World", 4098, False, normalized=True)]}),
    "bl-split": ("tiny", {
        "normalizer": {"type": "NFD"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Split", "pattern": {"String": "-"}, "behavior": "MergedWithPrevious", "invert": False},
            {"type": "Split", "pattern": {"Regex": "\\d"}, "behavior": "MergedWithNext", "invert": False},
            {"type": "Digits", "individual_digits": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "RobertaProcessing", "sep": ["<|endoftext|>", 0], "cls": ["<|endoftext|>", 0],
             "trim_offsets": True, "add_prefix_space": True}]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "added": [added("<sep>", 4096, True, lstrip=True), added("ing", 4097, False, single_word=True)]}),
    "bl-ws": ("tiny", {
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Prepend", "prepend": "x"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Whitespace"},
            {"type": "Split", "pattern": {"Regex": "[aeiou]"}, "behavior": "Contiguous", "invert": True},
            {"type": "Split", "pattern": {"String": "th"}, "behavior": "Removed", "invert": False},
            {"type": "Punctuation", "behavior": "MergedWithNext"},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "BertProcessing", "sep": ["<|endoftext|>", 0], "cls": ["<|endoftext|>", 0]},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            {"type": "Strip", "content": "x", "start": 2, "stop": 0}]},
        "added": [added("<s>", 4096, True, rstrip=True)]}),
    "spm-first": ("llama2", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": True},
        "post_processor": tmpl(("<s>", 1), ("</s>", 2)),
        "decoder": {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": True},
        "added": [added("<mask>", 32000, True, lstrip=True, rstrip=True)]}),
    "spm-always": ("llama2", {
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKD"}, {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": False},
        "model": {"byte_fallback": False},
        "added": [added("[X]", 32000, False, normalized=False)]}),
    "spm-never": ("llama2", {
        "normalizer": {"type": "Replace", "pattern": {"String": "  "}, "content": " "},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Punctuation", "behavior": "Removed"},
            {"type": "Metaspace", "replacement": META, "prepend_scheme": "never", "split": True}]},
        "model": {"fuse_unk": False, "byte_fallback": False},
        "decoder": {"type": "Metaspace", "replacement": META, "prepend_scheme": "never", "split": True}}),
}

for name, (base, v) in variants.items():
    with open(os.path.join(bases, base, "tokenizer.json"), encoding="utf-8") as f:
        t = json.load(f)
    for key in ("normalizer", "pre_tokenizer", "post_processor", "decoder"):
        if key in v:
            t[key] = v[key]
    t["model"].update(v.get("model", {}))
    t["added_tokens"] = t["added_tokens"] + v.get("added", [])
    d = os.path.join(outdir, f"variant-{name}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(t, f, ensure_ascii=False)
print(" ".join(f"{n}={outdir}/variant-{n}/tokenizer.json" for n in variants))
