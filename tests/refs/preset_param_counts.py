#!/usr/bin/env python3
"""Parameter counts of the synthetic presets as transformers builds them
(issue 24: `plan` must count what the published checkpoints hold). Each preset
is the model class of its family with the values of the published config.json
(written out below), built on the meta device (no memory, no init), its
parameters counted once each (a tied head is the embedding). The figures
serve where no exact published count is at hand (OPT: the paper and the model
cards round them) and check the others.

  python3 tests/refs/preset_param_counts.py     (16-core machine: transformers)

Prints one JSON line per preset: {"preset", "class", "parameters"}."""
import json

import torch
import transformers as tf


def opt(d, layers, heads):
    """OPT's published configs: ffn_dim 4 d, vocab 50272, 2048 positions, no projection"""
    return ("OPTConfig", dict(hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                              ffn_dim=4 * d, vocab_size=50272, max_position_embeddings=2048,
                              word_embed_proj_dim=d))


# preset: (config class, the published config.json's values)
PRESETS = {
    "opt-13b": opt(5120, 40, 40),
    "opt-30b": opt(7168, 48, 56),
    "opt-66b": opt(9216, 64, 72),
    "opt-175b": opt(12288, 96, 96),
    "falcon-40b": ("FalconConfig", dict(hidden_size=8192, num_hidden_layers=60, num_attention_heads=128,
                                        num_kv_heads=8, vocab_size=65024, new_decoder_architecture=True,
                                        bias=False, parallel_attn=True, tie_word_embeddings=False)),
    "falcon-180b": ("FalconConfig", dict(hidden_size=14848, num_hidden_layers=80,
                                         num_attention_heads=232, num_kv_heads=8, vocab_size=65024,
                                         new_decoder_architecture=True, bias=False,
                                         parallel_attn=True, tie_word_embeddings=False)),
    "gpt-neox-20b": ("GPTNeoXConfig", dict(hidden_size=6144, num_hidden_layers=44,
                                           num_attention_heads=64, intermediate_size=24576,
                                           vocab_size=50432, tie_word_embeddings=False)),
    "pythia-12b": ("GPTNeoXConfig", dict(hidden_size=5120, num_hidden_layers=36, num_attention_heads=40,
                                         intermediate_size=20480, vocab_size=50688,
                                         tie_word_embeddings=False)),
    "bloom-7b1": ("BloomConfig", dict(hidden_size=4096, n_layer=30, n_head=32, vocab_size=250880)),
    "llama2-13b": ("LlamaConfig", dict(hidden_size=5120, num_hidden_layers=40, num_attention_heads=40,
                                       intermediate_size=13824, vocab_size=32000,
                                       tie_word_embeddings=False)),
    "llama2-70b": ("LlamaConfig", dict(hidden_size=8192, num_hidden_layers=80, num_attention_heads=64,
                                       num_key_value_heads=8, intermediate_size=28672, vocab_size=32000,
                                       tie_word_embeddings=False)),
}


def main():
    for name, (cls, kw) in PRESETS.items():
        cfg = getattr(tf, cls)(**kw)
        with torch.device("meta"):
            m = tf.AutoModelForCausalLM.from_config(cfg)
        n = sum(p.numel() for p in m.parameters())  # parameters() yields a tied tensor once
        print(json.dumps({"preset": name, "class": type(m).__name__, "parameters": n}), flush=True)


if __name__ == "__main__":
    main()
