#!/usr/bin/env python3
"""The reference recipe of data/tasks/README.md with transformers + PEFT, one cell per call (issue 11).

Runs where transformers and PEFT are installed (the 16-core device machine: transformers 5.17, PEFT 0.21,
torch 2.11; not a dependency of deltatune). Its purpose is the reference table's own seed-to-seed spread:
the published table has one seed per cell, and a deltatune cell is compared with it.

  python3 bench/quality_peft.py --model data/models/tiny-llama --task data/tasks/supersense --method prefix \
      --seed 2 [--steps 600] [--threads 2] [--precision bf16|fp32] [--eval-rows 1000]

Recipe: AdamW (betas 0.9, 0.999, eps 1e-8, weight decay 0) at the table's learning rate, constant, 600 steps
of 32 rows drawn at random with replacement (torch.Generator seeded with --seed), bf16 autocast (as the
reference) or fp32; loss = the model's causal-LM loss (mean over scored tokens). Evaluation: exact match of
every scored token (teacher-forced argmax) on the first --eval-rows test rows, batch 50, same precision.
Prints one JSON line.
"""
import argparse
import contextlib
import json
import os
import time

import peft
import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, get_peft_model

LR = {"lora": 2e-3, "ia3": 1e-2, "prefix": 3e-3, "prompt": 3e-2}


def peft_config(method, family):
    if method == "lora":
        targets = ["c_attn"] if family == "gpt2" else ["q_proj", "v_proj"]
        return LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets)
    if method == "ia3":
        return IA3Config(task_type="CAUSAL_LM")
    if method == "prefix":
        return PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=10, prefix_projection=True,
                                  encoder_hidden_size=256)
    if method == "prompt":
        return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=10)
    raise SystemExit("quality_peft.py: method %s is not covered" % method)


def autocast(precision):
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def exact_match(model, ids, labels, rows, precision):
    model.eval()
    exact = scored_rows = 0
    tok_ok = tok_n = 0
    with torch.no_grad():
        for s in range(0, rows, 50):
            x, y = ids[s:s + 50], labels[s:s + 50]
            with autocast(precision):
                logits = model(input_ids=x).logits.float()
            pred = logits[:, :-1].argmax(-1)  # position t predicts token t+1
            tgt = y[:, 1:]
            mask = tgt != -100
            ok = (pred == tgt) | ~mask
            has = mask.any(1)
            exact += int((ok.all(1) & has).sum())
            scored_rows += int(has.sum())
            tok_ok += int(((pred == tgt) & mask).sum())
            tok_n += int(mask.sum())
    model.train()
    return exact / max(scored_rows, 1), tok_ok / max(tok_n, 1), exact, scored_rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--method", required=True, choices=sorted(LR))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--eval-rows", type=int, default=1000)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    family = json.load(open(os.path.join(a.model, "config.json")))["model_type"]
    family = "gpt2" if family == "gpt2" else "llama"
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    model = get_peft_model(model, peft_config(a.method, family))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    tr = load_file(os.path.join(a.task, "train.safetensors"))
    te = load_file(os.path.join(a.task, "test.safetensors"))
    ids, labels = tr["input_ids"].long(), tr["labels"].long()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR[a.method],
                            betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    g = torch.Generator().manual_seed(a.seed)
    losses = []
    t0 = time.time()
    model.train()
    for _ in range(a.steps):
        idx = torch.randint(0, ids.shape[0], (a.batch,), generator=g)
        with autocast(a.precision):
            loss = model(input_ids=ids[idx], labels=labels[idx]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    train_s = time.time() - t0
    rows = min(a.eval_rows, te["input_ids"].shape[0])
    em, tacc, n_exact, n_rows = exact_match(model, te["input_ids"][:rows].long(), te["labels"][:rows].long(), rows,
                                            a.precision)
    tail = losses[-20:]
    print(json.dumps({
        "model": os.path.basename(a.model.rstrip("/")), "task": os.path.basename(a.task.rstrip("/")),
        "method": a.method, "seed": a.seed, "steps": a.steps, "precision": a.precision, "lr": LR[a.method],
        "trainable": trainable, "exact_match": em, "exact_rows": n_exact, "eval_rows": n_rows,
        "token_accuracy": tacc, "first_loss": losses[0] if losses else None,
        "final_loss": sum(tail) / len(tail) if tail else None, "train_s": round(train_s, 1),
        "threads": a.threads, "torch": torch.__version__, "transformers": transformers.__version__,
        "peft": peft.__version__, "date": time.strftime("%Y-%m-%d", time.gmtime())}))


if __name__ == "__main__":
    main()
