#!/usr/bin/env bash
# The planning table of docs/plan.md: large backbones x delta methods x node
# counts, from `deltatune plan --json` (no weights are loaded).
# usage: bash bench/plan_table.sh BIN [MACHINE_JSON] > table.md
#   layout: RPN ranks per node (8), one tensor group over all ranks, one row
#   of SEQ tokens per step (2000: a prefix of 10 still fits GPT-3's 2048
#   positions), --recompute; frozen weights in bf16 (fp32 for full and said,
#   which rewrite them); MEM per node for the smallest fit (512G).
set -uo pipefail
BIN=${1:?binary}
MACHINE=${2:-/nonexistent/machine.json}
RPN=${RPN:-8}
SEQ=${SEQ:-2000}
MEM=${MEM:-512G}
NODES=${NODES:-"8 16 32 64"}
MODELS=${MODELS:-"gpt3-175b llama2-70b llama2-13b bloom-176b"}
methods() { # name|--method and options|weights dtype
  local llama=$1 model=$2
  if [[ $llama == 1 ]]; then echo "LoRA r=4 q,v|lora --lora-rank 4 --lora-targets q_proj,v_proj|bf16"
  elif [[ $model == bloom* ]]; then
    echo "LoRA r=4 query_key_value|lora --lora-rank 4 --lora-targets query_key_value|bf16"
  else echo "LoRA r=4 c_attn (= q,v count)|lora --lora-rank 4 --lora-targets c_attn|bf16"; fi
  echo "adapters m=64|adapter --adapter-size 64|bf16"
  echo "prefix P=10|prefix --prefix-tokens 10|bf16"
  [[ $llama == 1 ]] || echo "BitFit|bitfit|bf16"
  echo "SAID d=1000|said --said-dim 1000|fp32"
  echo "full|full|fp32"
}
hdr="| model | method | trainable | checkpoint (deltas / + AdamW) |"
sep="|---|---|---|---|"
for n in $NODES; do hdr+=" GiB/rank, $n nodes |"; sep+="---|"; done
echo "$hdr smallest fit ($MEM per node) |"
echo "$sep---|"
for model in $MODELS; do
  llama=0; [[ $model == llama* ]] && llama=1
  while IFS='|' read -r name margs dtype; do
    row="| $model | $name |"
    first=1
    for n in $NODES; do
      j=$("$BIN" plan --model "synthetic:$model" --method $margs --weights-dtype "$dtype" \
           --nodes "$n" --ranks-per-node "$RPN" --tp $((n * RPN)) --batch-size 1 --seq-len "$SEQ" \
           --recompute --compare-full no --json --machine "$MACHINE" \
           $([[ $first == 1 ]] && echo "--mem-per-node $MEM") 2>/dev/null)
      cells=$(python3 - "$j" "$first" <<'EOF'
import json, sys
j = json.loads(sys.argv[1]); p = j["plan"]; first = sys.argv[2] == "1"
def mb(b): return "%.1f kB" % (b / 1e3) if b < 1e5 else "%.1f MB" % (b / 1e6) if b < 1e9 else "%.1f GB" % (b / 1e9) if b < 1e12 else "%.2f TB" % (b / 1e12)
out = []
if first:
    t = p["trainable_parameters"]
    out.append("{:,}".format(t) if t < 1e5 else "%.1fM" % (t / 1e6) if t < 1e9 else "%.1fB" % (t / 1e9))
    k = p["checkpoint_per_task"]
    out.append("%s / %s" % (mb(k["deltas_bytes"]), mb(k["with_optimizer_bytes"])))
out.append("%.1f" % (p["memory_per_rank"]["peak_rss"] / 2**30))
s = j["smallest_fit"]
tail = ("%d node%s (tp %d)" % (s["nodes"], "s" if s["nodes"] > 1 else "", s["tp"])) if s.get("nodes") else "none up to 65536"
print("|".join(out) + ("\t" + tail if first else ""))
EOF
)
      if [[ $first == 1 ]]; then fit=${cells#*$'\t'}; cells=${cells%%$'\t'*}; fi
      row+=" ${cells//|/ | } |"
      first=0
    done
    echo "$row $fit |"
  done < <(methods $llama $model)
done
