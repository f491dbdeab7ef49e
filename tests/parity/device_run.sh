#!/bin/sh
# The one device call that makes and checks the fixtures (../shared/device/
# README.md: torch 2.11, transformers 5.17, peft 0.21 are installed there).
# Run from the repository root: `sh tests/parity/device_run.sh` with $OUT
# set; everything comes back as $OUT/fixtures.tar.gz and $OUT/log.
#  1. gpt2 and llama from the shipped model, batch and initial values: the
#     shipped loss0 and losses within 1e-5 and the same weights (--compare);
#  2. qwen2, mistral, opt, gemma and gemma2 fixtures from
#     tests/data/families/<family>/model (on the llama batch; opt on gpt2's):
#     unpack into tests/data/hf-parity/.
# A failed comparison is reported and the new fixtures are made all the same.
set -u
F=tests/data/hf-parity
W=${TMPDIR:-/tmp}/fx
rm -rf "$W"
export PYTHONUNBUFFERED=1
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
status=0
for fam in gpt2 llama; do
  python3 tests/parity/make_fixtures.py $fam "$W/check" --model-dir $F/$fam/model \
    --batch $F/$fam/batch.safetensors --init-dir $F/$fam --compare $F/$fam || status=1
done
for fam in qwen2 mistral; do
  python3 tests/parity/make_fixtures.py $fam "$W/new" --model-dir tests/data/families/$fam/model \
    --batch $F/llama/batch.safetensors || status=1
done
python3 tests/parity/make_fixtures.py opt "$W/new" --model-dir tests/data/families/opt/model \
  --batch $F/gpt2/batch.safetensors || status=1
# Gemma and Gemma-2 one method a call: a method transformers or PEFT cannot
# run for the family (say prefix tuning over Gemma-2's cache) fails alone
for fam in gemma gemma2; do
  for m in base full lora prefix prefix_proj prompt ia3 lastlayer adapter said; do
    python3 tests/parity/make_fixtures.py $fam "$W/new" --model-dir tests/data/families/$fam/model \
      --batch $F/llama/batch.safetensors --methods $m || status=1
  done
done
tar -C "$W" -czf "$OUT/fixtures.tar.gz" new check
exit $status
