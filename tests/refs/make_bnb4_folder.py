#!/usr/bin/python3
"""A small LLaMA in two folders, float32 and bitsandbytes' 4-bit layout, and
damaged copies of the latter, for test_bnb4 (src/bnb4.h).

  /usr/bin/python3 tests/refs/make_bnb4_folder.py [OUT]   (default tests/data/bnb4)

OUT/model/  config.json + model.safetensors: LLaMA, 2 layers, d 64, 4 heads /
            2 kv (head dim 16), ffn 128, vocab 96 (the LLaMA fixture's batch
            fits), float32, N(0, 0.02) matrices and embeddings (seed 2), norms
            1 + N(0, 0.1).
OUT/bnb/    the same with every block linear (q,k,v,o,gate,up,down_proj) as
            transformers saves a Linear4bit with bnb_4bit_quant_type nf4 and
            bnb_4bit_use_double_quant true (bitsandbytes' QuantState.as_dict
            (packed=True)): NAME (uint8 [(n + 1) / 2, 1]: the flattened
            [out, in] codes, two a byte, the first in the high nibble),
            NAME.absmax (uint8: the 8-bit codes of the block scales),
            NAME.quant_map (float32 [16], the NF4 code book),
            NAME.nested_absmax (float32), NAME.nested_quant_map (float32
            [256], the dynamic map), NAME.quant_state.bitsandbytes__nf4 (uint8:
            the JSON of quant_type, blocksize, dtype, shape, nested_blocksize,
            nested_dtype, nested_offset); config.json's quantization_config
            as transformers writes it. The quantization is tests/refs/nf4_dq.py
            (PyTorch), not deltatune's.
OUT/gpt2-model/, gpt2-bnb/: the same for a GPT-2 (2 layers, d 64, 4 heads,
            ffn 256, vocab 96, 64 positions, tied head; seed 3): its Conv1D
            weights ([in, out] in the file) quantized on their transpose, as
            transformers does, so the quant_state shape is [out, in].
OUT/bad_blocksize, bad_fp4, bad_shape/: bnb/ with the quant_state of
            model.layers.0.self_attn.q_proj.weight saying blocksize 128,
            quant_type fp4 (under the key ...bitsandbytes__fp4), or shape
            [64, 128]."""
import copy
import json
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "parity"))
import nf4_dq  # noqa: E402
import st  # noqa: E402

CONFIG = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "bos_token_id": 1,
    "eos_token_id": 2, "head_dim": 16, "hidden_act": "silu", "hidden_size": 64,
    "intermediate_size": 128, "max_position_embeddings": 64, "mlp_bias": False,
    "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2,
    "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
    "tie_word_embeddings": False, "torch_dtype": "float32", "vocab_size": 96}
QCONFIG = {
    "_load_in_4bit": True, "_load_in_8bit": False, "bnb_4bit_compute_dtype": "float32",
    "bnb_4bit_quant_storage": "uint8", "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
    "llm_int8_enable_fp32_cpu_offload": False, "llm_int8_has_fp16_weight": False,
    "llm_int8_skip_modules": None, "llm_int8_threshold": 6.0, "load_in_4bit": True,
    "load_in_8bit": False, "quant_method": "bitsandbytes"}
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def fp32_model():
    g = torch.Generator().manual_seed(2)
    d, f, v, kv = 64, 128, 96, 32
    t = {"model.embed_tokens.weight": torch.randn(v, d, generator=g) * 0.02}
    shapes = {"self_attn.q_proj": (d, d), "self_attn.k_proj": (kv, d), "self_attn.v_proj": (kv, d),
              "self_attn.o_proj": (d, d), "mlp.gate_proj": (f, d), "mlp.up_proj": (f, d),
              "mlp.down_proj": (d, f)}
    for l in range(2):
        p = "model.layers.%d." % l
        t[p + "input_layernorm.weight"] = 1 + torch.randn(d, generator=g) * 0.1
        for m in LINEARS:
            t[p + m + ".weight"] = torch.randn(*shapes[m], generator=g) * 0.02
        t[p + "post_attention_layernorm.weight"] = 1 + torch.randn(d, generator=g) * 0.1
    t["model.norm.weight"] = 1 + torch.randn(d, generator=g) * 0.1
    t["lm_head.weight"] = torch.randn(v, d, generator=g) * 0.02
    return {k: x.float().numpy() for k, x in t.items()}


GPT2_CONFIG = {
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "bos_token_id": 50256,
    "eos_token_id": 50256, "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_embd": 64, "n_head": 4,
    "n_inner": None, "n_layer": 2, "n_positions": 64, "tie_word_embeddings": True, "torch_dtype": "float32",
    "vocab_size": 96}
GPT2_CONV1D = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


def gpt2_model():
    g = torch.Generator().manual_seed(3)
    d, f, v = 64, 256, 96
    t = {"transformer.wte.weight": torch.randn(v, d, generator=g) * 0.02,
         "transformer.wpe.weight": torch.randn(64, d, generator=g) * 0.01}
    shapes = {"attn.c_attn": (d, 3 * d), "attn.c_proj": (d, d), "mlp.c_fc": (d, f), "mlp.c_proj": (f, d)}
    for l in range(2):
        p = "transformer.h.%d." % l
        for ln in ("ln_1", "ln_2"):
            t[p + ln + ".weight"] = 1 + torch.randn(d, generator=g) * 0.1
            t[p + ln + ".bias"] = torch.randn(d, generator=g) * 0.02
        for m in GPT2_CONV1D:
            t[p + m + ".weight"] = torch.randn(*shapes[m], generator=g) * 0.02
            t[p + m + ".bias"] = torch.randn(shapes[m][1], generator=g) * 0.02
    t["transformer.ln_f.weight"] = 1 + torch.randn(d, generator=g) * 0.1
    t["transformer.ln_f.bias"] = torch.randn(d, generator=g) * 0.02
    return {k: x.float().numpy() for k, x in t.items()}


def bnb_tensors(name, w, dmap):
    """bitsandbytes' packed state dict entries of one Linear weight w [out, in]."""
    out, n_in = w.shape
    assert n_in % 64 == 0  # then the flattened blocks are per-row blocks
    r = nf4_dq.quantize(torch.from_numpy(w), dmap)
    codes = r["index"].reshape(-1).numpy().astype(np.uint8)
    if codes.size % 2:
        codes = np.append(codes, 0)
    packed = ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8).reshape(-1, 1)
    state = {"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [out, n_in],
             "nested_blocksize": 256, "nested_dtype": "float32",
             "nested_offset": float(r["offset"])}
    return {name: packed,
            name + ".absmax": r["scodes"].numpy().astype(np.uint8),
            name + ".quant_map": nf4_dq.NF4.numpy(),
            name + ".nested_absmax": r["nabs"].numpy().astype(np.float32),
            name + ".nested_quant_map": dmap.numpy(),
            name + ".quant_state.bitsandbytes__nf4": np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)}


def write_folder(path, config, tensors):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
        f.write("\n")
    st.write(os.path.join(path, "model.safetensors"), tensors)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(HERE), "data", "bnb4")
    for sub in ("model", "bnb", "gpt2-model", "gpt2-bnb", "bad_blocksize", "bad_fp4", "bad_shape"):
        if os.path.isdir(os.path.join(out, sub)):
            shutil.rmtree(os.path.join(out, sub))
    w = fp32_model()
    write_folder(os.path.join(out, "model"), CONFIG, w)
    dmap = nf4_dq.dynamic_map()
    q = {}
    for k, x in w.items():
        if any(k.endswith(m + ".weight") for m in LINEARS):
            q.update(bnb_tensors(k, x, dmap))
        else:
            q[k] = x
    qc = dict(CONFIG, quantization_config=QCONFIG)
    write_folder(os.path.join(out, "bnb"), qc, q)
    gw = gpt2_model()
    write_folder(os.path.join(out, "gpt2-model"), GPT2_CONFIG, gw)
    gq = {}
    for k, x in gw.items():
        if any(k.endswith(m + ".weight") for m in GPT2_CONV1D):
            gq.update(bnb_tensors(k, np.ascontiguousarray(x.T), dmap))  # [out, in], as transformers
        else:
            gq[k] = x
    write_folder(os.path.join(out, "gpt2-bnb"), dict(GPT2_CONFIG, quantization_config=QCONFIG), gq)
    target = "model.layers.0.self_attn.q_proj.weight"
    key = target + ".quant_state.bitsandbytes__nf4"
    state = json.loads(bytes(q[key]).decode())
    for case, change in (("bad_blocksize", {"blocksize": 128}), ("bad_fp4", {"quant_type": "fp4"}),
                         ("bad_shape", {"shape": [64, 128]})):
        s = dict(state, **change)
        bad = {}
        for k, x in q.items():
            if k == key:
                k = target + ".quant_state.bitsandbytes__" + s["quant_type"]
                x = np.frombuffer(json.dumps(s).encode(), dtype=np.uint8)
            bad[k] = x
        write_folder(os.path.join(out, case), copy.deepcopy(qc), bad)
    print("wrote", out, "(%d tensors in bnb/)" % len(q))


if __name__ == "__main__":
    main()
