#!/usr/bin/env bash
# Generation throughput side by side on the 16-core machine (issue 23): deltatune generate (bench/generate.sh)
# and transformers' generate() + PEFT (bench/peer/hf_generate_bench.py) on the same prompts, greedy, EOS off.
#   bash bench/generate_device.sh BUILD_DIR SHAPE      SHAPE: 1.3b (GPT-2 24 x 2048) or 13b (LLaMA-2-13B)
#   env: PROMPTS (8), PROMPT_LEN (64), NEW (32), BATCH (8), PARTS ("dt hf late": deltatune's runs, transformers',
#        the slow runs kept for last, i.e. 13B on one rank; PARTS=late runs only those)
# Prints the lines of both, then a Markdown table (tokens/s of new tokens).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build} SHAPE=${2:-1.3b}
export PROMPTS=${PROMPTS:-8} PROMPT_LEN=${PROMPT_LEN:-64} NEW=${NEW:-32} BATCH=${BATCH:-8}
P=$(mktemp)
trap 'rm -f "$P"' EXIT
case $SHAPE in
  1.3b) dt_model=synthetic:gpt2:layers=24,d=2048,heads=16,ffn=8192,vocab=50257,ctx=2048
        hf_shape=gpt2:layers=24,d=2048,heads=16,vocab=50257,ctx=2048
        runs=("fp32 1:1" "fp32 16:16" "bf16 1:1" "bf16 16:16" "bf16 16:4") hf=(fp32 bf16) late=() ;;
  13b) dt_model=synthetic:llama2-13b
       hf_shape=llama:layers=40,d=5120,heads=40,ffn=13824,vocab=32000,ctx=4096
       runs=("bf16 16:16") hf=(bf16) late=("bf16 1:1") ;;
  *) echo "generate_device.sh: shape $SHAPE (1.3b, 13b)" >&2; exit 2 ;;
esac
rows=()
dt_run() {  # WEIGHTS RANKS:TP
  local w=$1 layout=$2 mm=fp32 line ranks tp tok sec tps
  [[ $w == bf16 ]] && mm=bf16
  line=$(KEEP_PROMPTS=$P MODEL=$dt_model WEIGHTS=$w METHOD="--method lora --matmul-dtype $mm" \
         bash bench/generate.sh "$BUILD" "$layout" | tail -1)
  echo "deltatune $w $layout: $line"
  read -r ranks tp _ _ _ _ tok sec tps <<<"$line"
  rows+=("deltatune, $ranks ranks --tp $tp, weights $w, products $mm|$tok|$sec|$tps")
}
PARTS=${PARTS:-dt hf late}
[[ " $PARTS " == *" dt "* ]] || runs=()
[[ " $PARTS " == *" hf "* ]] || hf=()
[[ " $PARTS " == *" late "* ]] || late=()
for r in "${runs[@]}"; do dt_run $r; done
for d in "${hf[@]}"; do
  j=$(python3 bench/peer/hf_generate_bench.py --shape "$hf_shape" --prompts "$P" --new "$NEW" \
        --batch "$BATCH" --dtype "$d")
  echo "transformers $d: $j"
  read -r tok sec tps thr <<<"$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["new_tokens"], d["seconds"], d["tokens_per_s"], d["threads"])' "$j")"
  rows+=("transformers generate() + PEFT LoRA, $thr threads, $d|$tok|$sec|$tps")
done
# the slow runs (13B on one rank) last, so a time limit takes only them
for r in "${late[@]}"; do dt_run $r; done
echo
echo "$SHAPE: $PROMPTS prompts of $PROMPT_LEN tokens, $NEW new each, batch $BATCH, greedy, EOS off; $(date -u +%F)"
echo
echo "| run | new tokens | seconds | tokens/s |"
echo "|---|---|---|---|"
for r in "${rows[@]}"; do IFS='|' read -r a b c e <<<"$r"; echo "| $a | $b | $c | $e |"; done
