#!/usr/bin/env python3
"""Build the bad inputs of test_bad_input (docs/reliability.md) in a folder.

usage: bad_inputs.py FIXTURES OUT

FIXTURES is tests/data/hf-parity. Every case is a damaged copy of a fixture
file: a model folder OUT/<case>/ (config.json + model.safetensors) or a data
file OUT/<case>.safetensors; or a sweep task file OUT/task_<case>.ini.
Python standard library only.
"""
import json
import os
import shutil
import struct
import sys


def read_st(path):
    """(header dict, data bytes) of a safetensors file."""
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]


def write_st(path, header, data, raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def tensors(entries):
    """Header and data of {name: (dtype, shape, bytes)}."""
    header, data = {}, b""
    for name, (dtype, shape, raw) in entries.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    return header, data


def ints(values, fmt="q"):
    return struct.pack("<%d%s" % (len(values), fmt), *values)


def main():
    fx, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    gpt2 = os.path.join(fx, "gpt2", "model")
    llama = os.path.join(fx, "llama", "model")

    def model_copy(case, src=gpt2):
        d = os.path.join(out, case)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for f in ("config.json", "model.safetensors"):
            shutil.copy(os.path.join(src, f), d)
        return d

    def edit_config(case, fn, src=gpt2):
        d = model_copy(case, src)
        p = os.path.join(d, "config.json")
        with open(p) as f:
            c = json.load(f)
        fn(c)
        with open(p, "w") as f:
            json.dump(c, f, indent=2)

    def edit_header(case, fn, src=gpt2):
        d = model_copy(case, src)
        p = os.path.join(d, "model.safetensors")
        h, data = read_st(p)
        data = fn(h, data)
        write_st(p, h, data)

    # --- model folders -------------------------------------------------
    d = model_copy("no_config")
    os.remove(os.path.join(d, "config.json"))
    d = model_copy("bad_json")
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write('{\n  "model_type": "gpt2",\n  "n_layer": 2,\n  "n_embd": 48\n  "n_head": 4\n}\n')
    edit_config("unknown_arch", lambda c: c.update(model_type="bert"))
    edit_config("no_layers", lambda c: c.pop("n_layer"))
    edit_config("heads_text", lambda c: c.update(n_head="four"))
    edit_config("heads_indivisible", lambda c: c.update(n_head=5))
    edit_config("act_unsupported", lambda c: c.update(activation_function="relu"))
    d = model_copy("no_weights")
    os.remove(os.path.join(d, "model.safetensors"))

    def drop(h, data):
        del h["transformer.h.1.mlp.c_fc.weight"]
        return data
    edit_header("missing_tensor", drop)

    def transpose(h, data):
        h["transformer.h.1.mlp.c_fc.weight"]["shape"] = [192, 48]
        return data
    edit_header("shape_mismatch", transpose)

    def as_int(h, data):
        h["transformer.h.0.attn.c_proj.weight"]["dtype"] = "I32"
        return data
    edit_header("dtype_mismatch", as_int)

    def outside(h, data):
        t = h["transformer.wte.weight"]
        b, e = t["data_offsets"]
        t["data_offsets"] = [b + 4096 * 1024, e + 4096 * 1024]
        return data
    edit_header("offsets_outside", outside)

    def overlap(h, data):
        h["transformer.h.0.ln_1.weight"]["data_offsets"] = h["transformer.h.0.ln_1.bias"]["data_offsets"]
        return data
    edit_header("overlap", overlap)

    d = model_copy("truncated")
    p = os.path.join(d, "model.safetensors")
    os.truncate(p, os.path.getsize(p) // 2)

    d = model_copy("corrupt_header")
    p = os.path.join(d, "model.safetensors")
    with open(p, "r+b") as f:  # garbage over the middle of the JSON header
        f.seek(200)
        f.write(b"\x00\xff\x13garbage\x00")

    d = model_copy("absurd_header_len")
    p = os.path.join(d, "model.safetensors")
    with open(p, "r+b") as f:
        f.write(struct.pack("<Q", 1 << 62))

    d = model_copy("short_file")
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(b"\x05\x00\x00")

    # --- data files ----------------------------------------------------
    def data(case, entries):
        h, raw = tensors(entries)
        write_st(os.path.join(out, case + ".safetensors"), h, raw)

    ok = list(range(1, 13)) * 2  # [2, 12] valid ids (vocab 96)
    data("data_float", {"input_ids": ("F32", [2, 12], struct.pack("<24f", *ok))})
    big = list(ok)
    big[12 + 5] = 96  # row 1, column 5: one past the vocabulary
    data("data_vocab", {"input_ids": ("I64", [2, 12], ints(big))})
    neg = list(ok)
    neg[3] = -7
    data("data_negative", {"input_ids": ("I32", [2, 12], ints(neg, "i"))})
    data("data_empty", {"input_ids": ("I64", [0, 12], b"")})
    data("data_ragged", {"input_ids": ("I64", [2, 12], ints(ok)),
                         "labels": ("I64", [2, 11], ints(ok[:22]))})
    data("data_1d", {"input_ids": ("I64", [24], ints(ok))})
    data("data_no_ids", {"tokens": ("I64", [2, 12], ints(ok))})
    data("data_unscored", {"input_ids": ("I64", [2, 12], ints(ok)),
                           "labels": ("I64", [2, 12], ints([-100] * 24))})
    h, raw = tensors({"input_ids": ("I64", [2, 12], ints(ok))})
    p = os.path.join(out, "data_truncated.safetensors")
    write_st(p, h, raw)
    os.truncate(p, os.path.getsize(p) - 40)

    # --- numerical faults (not rejected at load: they show as a loss) ---
    # A LLaMA backbone (untied head) whose embedding row of token 95 is +inf:
    # a batch with that token has a NaN loss, the others are finite.
    d = model_copy("nan_model", llama)
    p = os.path.join(d, "model.safetensors")
    h, raw = read_st(p)
    b, e = h["model.embed_tokens.weight"]["data_offsets"]
    d_model = h["model.embed_tokens.weight"]["shape"][1]
    row = b + 95 * d_model * 4
    raw = raw[:row] + struct.pack("<f", float("inf")) * d_model + raw[row + d_model * 4:]
    write_st(p, h, raw)
    rows = [[(7 * r + c) % 90 + 1 for c in range(12)] for r in range(8)]
    for case, poisoned in (("nan_step2", (4, 5)), ("nan_steps23", (4, 5, 6, 7))):
        ids = [list(x) for x in rows]
        for r in poisoned:
            ids[r][6] = 95
        flat = [v for x in ids for v in x]
        data(case, {"input_ids": ("I64", [8, 12], ints(flat))})

    # --- --init-from files ---------------------------------------------
    # every LoRA tensor of the gpt2 fixture (r 8 on c_attn), one of them
    # with rank 4
    lora = {}
    for layer in (0, 1):
        pre = "base_model.model.transformer.h.%d.attn.c_attn." % layer
        r = 4 if layer == 0 else 8
        lora[pre + "lora_A.weight"] = ("F32", [r, 48], b"\0" * 4 * r * 48)
        lora[pre + "lora_B.weight"] = ("F32", [144, 8], b"\0" * 4 * 144 * 8)
    h, raw = tensors(lora)
    write_st(os.path.join(out, "init_shape.safetensors"), h, raw)

    # --- sweep task files (INI) -----------------------------------------
    gdata = os.path.join(fx, "gpt2", "batch.safetensors")

    def task_file(case, text):
        with open(os.path.join(out, case + ".ini"), "w") as f:
            f.write(text)
    task_file("task_empty", "")
    task_file("task_unknown_key", "[task a]\ndata = %s\nlora-rnak = 3\n" % gdata)
    task_file("task_bad_value", "[task a]\ndata = %s\nlr = 20\n" % gdata)
    task_file("task_duplicate", "[task a]\ndata = %s\n\n[task b]\ndata = %s\n\n"
              "[task a]\nsteps = 3\n" % (gdata, gdata))
    # a section line behind a vertical tab: inih reads it as the
    # continuation of the previous value (tests/fuzz/fuzz_taskfile found the
    # parser disagreeing with inih there)
    task_file("task_indented", "[task a]\ndata = %s\nsteps = 2\n\v[task b]\ndata = %s\n"
              % (gdata, gdata))
    task_file("task_no_data", "[task a]\nmethod = lora\nsteps = 3\n")
    task_file("task_absent_method", "[task a]\nmethod = bitfit\ndata = %s\nlora-rank = 4\n"
              % gdata)


if __name__ == "__main__":
    main()
