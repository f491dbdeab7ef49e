#!/usr/bin/env python3
"""transformers' generate() throughput beside bench/generate.sh (issue 23): a
randomly initialised model of the given shape with a PEFT LoRA (r 8, PEFT's
default targets, B = 0 as PEFT initialises it: the adapter is computed, not
merged), greedy, EOS off (every row runs to --new), the prompts of a
generate.sh prompts file, --batch rows at a time, all cores as torch threads.

  hf_generate_bench.py --shape gpt2:layers=24,d=2048,heads=16,vocab=50257 \
      --prompts p.jsonl --new 64 --batch 8 --dtype bf16

Prints one JSON line: shape, dtype, threads, rows, new_tokens, seconds (the
generation itself, after the model is built), tokens_per_s (new tokens),
setup_s."""
import argparse
import json
import os
import time

import torch


def parse_shape(spec):
    fam, _, rest = spec.partition(":")
    kv = dict(p.split("=") for p in rest.split(",") if p)
    return fam, {k: int(v) for k, v in kv.items()}


def build(fam, s, dtype):
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig
    if fam == "gpt2":
        cfg = GPT2Config(n_layer=s["layers"], n_embd=s["d"], n_head=s["heads"],
                         vocab_size=s.get("vocab", 50257), n_positions=s.get("ctx", 2048),
                         n_inner=s.get("ffn"))
    elif fam == "llama":
        cfg = LlamaConfig(num_hidden_layers=s["layers"], hidden_size=s["d"],
                          num_attention_heads=s["heads"],
                          num_key_value_heads=s.get("kv", s["heads"]),
                          intermediate_size=s["ffn"], vocab_size=s.get("vocab", 32000),
                          max_position_embeddings=s.get("ctx", 4096))
    else:
        raise SystemExit("hf_generate_bench: family %s (gpt2, llama)" % fam)
    with torch.device("meta"):
        m = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    m = m.to_empty(device="cpu")
    with torch.no_grad():  # uniform fill: much faster than the model's own init at 13B
        g = torch.Generator().manual_seed(0)
        for p in m.parameters():
            p.uniform_(-0.02, 0.02, generator=g)
    if hasattr(m, "tie_weights"):
        m.tie_weights()
    from peft import LoraConfig, get_peft_model
    m = get_peft_model(m, LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.0))
    return m.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    fam, s = parse_shape(a.shape)
    m = build(fam, s, torch.bfloat16 if a.dtype == "bf16" else torch.float32)
    setup = time.time() - t0
    rows = [json.loads(l)["prompt_ids"] for l in open(a.prompts)]
    new = 0
    t0 = time.time()
    with torch.no_grad():
        for i in range(0, len(rows), a.batch):
            ids = torch.tensor(rows[i:i + a.batch], dtype=torch.long)  # equal lengths: no padding
            out = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             max_new_tokens=a.new, min_new_tokens=a.new, do_sample=False,
                             num_beams=1, use_cache=True, pad_token_id=0)
            new += (out.shape[1] - ids.shape[1]) * ids.shape[0]
    sec = time.time() - t0
    print(json.dumps({"shape": a.shape, "dtype": a.dtype, "threads": a.threads, "rows": len(rows),
                      "new_tokens": new, "seconds": round(sec, 3),
                      "tokens_per_s": round(new / sec, 2), "setup_s": round(setup, 1),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
