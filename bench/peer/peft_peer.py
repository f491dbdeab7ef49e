#!/usr/bin/env python3
"""The issue-12 peer on the 16-core machine: transformers + PEFT, LoRA on a GPT-2-shaped model.

Random-initialised GPT2LMHeadModel of the given shape (vocab 50257 by default), LoRA r=8 alpha 16 on c_attn
(PEFT, dropout 0), AdamW over the LoRA parameters, uniform random tokens with every position scored
(labels = input_ids, the model's causal-LM loss), fp32 or bf16 autocast; prints one JSON line with the median
step (steps 1.., the first is warm-up), tokens/s and the peak RSS (ru_maxrss). Needs torch, transformers and
peft (installed on the device machine, not dependencies of deltatune); bench/peer_device.sh runs it next to
deltatune on the same shapes.

  python3 bench/peer/peft_peer.py --layers 24 --d 2048 --heads 16 --batch 4 --seq 512 --steps 4 --threads 16 \
      [--precision fp32|bf16]
"""
import argparse
import contextlib
import json
import resource
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--d", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    t0 = time.time()
    cfg = GPT2Config(n_layer=a.layers, n_embd=a.d, n_head=a.heads, vocab_size=a.vocab,
                     n_positions=max(1024, a.seq), resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=a.rank, lora_alpha=a.alpha,
                                             lora_dropout=0.0, target_modules=["c_attn"]))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq))
    setup_s = time.time() - t0
    cast = (torch.autocast("cpu", dtype=torch.bfloat16) if a.precision == "bf16" else contextlib.nullcontext())
    times, losses = [], []
    for _ in range(a.steps):
        s = time.time()
        with cast:
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.time() - s)
        losses.append(float(loss))
    med = statistics.median(times[1:] if len(times) > 1 else times)
    print(json.dumps({
        "layers": a.layers, "d": a.d, "heads": a.heads, "vocab": a.vocab, "seq": a.seq, "batch": a.batch,
        "threads": a.threads, "precision": a.precision, "steps": a.steps, "median_step_s": med,
        "tokens_per_s": a.batch * a.seq / med, "step_times_s": [round(t, 4) for t in times],
        "loss0": losses[0], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "setup_s": round(setup_s, 1), "trainable_params": sum(p.numel() for p in params),
        "torch": torch.__version__}))


if __name__ == "__main__":
    main()
