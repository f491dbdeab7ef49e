#!/usr/bin/env bash
# Parity of every method with transformers + PEFT on the fixtures: prints a
# Markdown table of the worst step-loss difference (steps 0..4), the worst
# loss-change difference and the worst step-0 gradient relative L2 error.
# usage: bash bench/parity_report.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
BIN=${1:-build}/deltatune
F=tests/data/hf-parity
T=$(mktemp -d)
cases=(
  "gpt2 lora --method lora --lora-rank 4 --lora-alpha 8 --lora-targets c_attn,mlp.c_fc"
  "llama lora --method lora --lora-rank 4 --lora-alpha 8 --lora-targets q_proj,v_proj,down_proj"
  "gpt2 adapter --method adapter --adapter-size 8"
  "llama adapter --method adapter --adapter-size 8"
  "gpt2 prefix --method prefix --prefix-tokens 3"
  "llama prefix --method prefix --prefix-tokens 3"
  "gpt2 prefix_proj --method prefix --prefix-tokens 3 --prefix-hidden 32"
  "llama prefix_proj --method prefix --prefix-tokens 3 --prefix-hidden 32"
  "gpt2 prompt --method prompt --prompt-tokens 3"
  "llama prompt --method prompt --prompt-tokens 3"
  "gpt2 bitfit --method bitfit"
  "gpt2 lastlayer --method lastlayer"
  "llama lastlayer --method lastlayer"
  "gpt2 said --method said --said-dim 24"
  "llama said --method said --said-dim 24"
  "gpt2 ia3 --method ia3"
  "llama ia3 --method ia3"
  "gpt2 full --method full"
  "llama full --method full"
)
echo "| family | fixture | max abs loss diff | max loss-change diff | max grad rel L2 err | tensors |"
echo "|---|---|---|---|---|---|"
for c in "${cases[@]}"; do
  read -r fam m args <<<"$c"
  init="$F/$fam/$m/init.safetensors"
  [[ -f $F/$fam/$m/projection.safetensors ]] && init="$init,$F/$fam/$m/projection.safetensors"
  # shellcheck disable=SC2086
  "$BIN" train --model $F/$fam/model --data $F/$fam/batch.safetensors --batch-size 2 --steps 5 \
    --lr 1e-2 $args --init-from "$init" --metrics "$T/m.jsonl" --dump-grads "$T/g.safetensors" >/dev/null
  echo "| $fam | $m $(/usr/bin/python3 bench/compare_fixture.py --row $F/$fam/$m "$T/m.jsonl" "$T/g.safetensors")"
done
rm -rf "$T"
