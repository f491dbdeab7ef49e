#!/bin/sh
# The one device call that makes and checks the fixtures (../shared/device/
# README.md: torch 2.11, transformers 5.17, peft 0.21 are installed there).
# Run from the repository root: `sh tests/parity/device_run.sh [FAMILY...]` with $OUT
# set; everything comes back as $OUT/fixtures.tar.gz (after each family) and $OUT/log.
#  1. gpt2 and llama from the shipped model, batch and initial values: the
#     shipped loss0 and losses within 1e-5 and the same weights (--compare);
#  2. qwen2, mistral, opt, gemma and gemma2 fixtures from
#     tests/data/families/<family>/model (on the llama batch; opt on gpt2's),
#     gpt_neox from families/neox, gpt_neox_seq from families/neox_seq, bloom
#     from families/bloom, bloom_h6 from families/bloom_h6, falcon, falcon_mq
#     and falcon_seq from families/falcon{,_mq,_seq} (on gpt2's batch):
#     unpack into tests/data/hf-parity/.
# A failed comparison is reported and the new fixtures are made all the same.
set -u
F=tests/data/hf-parity
W=${TMPDIR:-/tmp}/fx
rm -rf "$W"
export PYTHONUNBUFFERED=1
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
status=0
# one family: make_fixtures.py with its model folder and batch
fixture() {
  case $1 in
    gpt2|llama) python3 tests/parity/make_fixtures.py $1 "$W/check" --model-dir $F/$1/model \
                  --batch $F/$1/batch.safetensors --init-dir $F/$1 --compare $F/$1 ;;
    qwen2|mistral) python3 tests/parity/make_fixtures.py $1 "$W/new" \
                     --model-dir tests/data/families/$1/model --batch $F/llama/batch.safetensors ;;
    opt) python3 tests/parity/make_fixtures.py opt "$W/new" --model-dir tests/data/families/opt/model \
           --batch $F/gpt2/batch.safetensors ;;
    gpt_neox) python3 tests/parity/make_fixtures.py gpt_neox "$W/new" \
                --model-dir tests/data/families/neox/model --batch $F/gpt2/batch.safetensors ;;
    gpt_neox_seq) python3 tests/parity/make_fixtures.py gpt_neox "$W/new" --name gpt_neox_seq \
                    --model-dir tests/data/families/neox_seq/model --batch $F/gpt2/batch.safetensors ;;
    bloom) python3 tests/parity/make_fixtures.py bloom "$W/new" \
             --model-dir tests/data/families/bloom/model --batch $F/gpt2/batch.safetensors ;;
    bloom_h6) python3 tests/parity/make_fixtures.py bloom "$W/new" --name bloom_h6 \
                --model-dir tests/data/families/bloom_h6/model --batch $F/gpt2/batch.safetensors ;;
    falcon|falcon_seq)
      python3 tests/parity/make_fixtures.py falcon "$W/new" --name $1 \
        --model-dir tests/data/families/$1/model --batch $F/gpt2/batch.safetensors ;;
    # no prefix: PEFT's, a key/value per query head, does not fit the
    # multi-query block's one key head (2026-12-05: "Sizes of tensors must
    # match ... Expected size 8 but got size 1"; docs/usage.md)
    falcon_mq)
      python3 tests/parity/make_fixtures.py falcon "$W/new" --name falcon_mq \
        --model-dir tests/data/families/falcon_mq/model --batch $F/gpt2/batch.safetensors \
        --methods base,full,lora,prompt,ia3,bitfit,lastlayer,adapter,said ;;
    # Gemma and Gemma-2: a method transformers or PEFT cannot run for the
    # family (say prefix tuning over Gemma-2's cache) fails alone inside
    # make_fixtures.py (one process: 2026-12-05 one process a method took
    # 150 s of the device's time for Gemma, mostly starting Python)
    gemma|gemma2)
      python3 tests/parity/make_fixtures.py $1 "$W/new" --model-dir tests/data/families/$1/model \
        --batch $F/llama/batch.safetensors \
        --methods base,full,lora,prefix,prefix_proj,prompt,ia3,lastlayer,adapter,said ;;
    *) echo "device_run.sh: no family $1"; return 2 ;;
  esac
}
# the families named as arguments; all of them by default
[ $# -gt 0 ] || set -- gpt2 llama qwen2 mistral opt gpt_neox gpt_neox_seq gemma gemma2 bloom bloom_h6 \
  falcon falcon_mq falcon_seq
# the archive is written again after each family, so a call that runs out of
# time still brings back every family it finished (2026-12-05: two calls lost
# theirs that way)
mkdir -p "$W/new" "$W/check"
for fam in "$@"; do
  fixture "$fam" || status=1
  tar -C "$W" -czf "$OUT/fixtures.tmp.tar.gz" new check && mv "$OUT/fixtures.tmp.tar.gz" "$OUT/fixtures.tar.gz"
done
exit $status
