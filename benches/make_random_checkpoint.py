#!/usr/bin/env python3
"""Writes a full-size CHAYA-v1 state dict (62,334,784 parameters) with random
weights as safetensors, for speed and memory benchmarks when the trained
checkpoints are not at hand. Random weights say nothing about quality.

    python3 benches/make_random_checkpoint.py /tmp/chaya-62m-random.safetensors
    chaya convert /tmp/chaya-62m-random.safetensors -o /tmp/chaya-62m-int8.safetensors

Needs numpy and safetensors (pip install numpy safetensors).
"""
import sys

import numpy as np
from safetensors.numpy import save_file

V, E, D, L, H, F = 50257, 192, 640, 8, 8, 2560


def main(path):
    rng = np.random.default_rng(0)

    def linear(out_features, in_features):
        return (rng.standard_normal((out_features, in_features)) / np.sqrt(in_features)).astype(np.float32)

    def scale():
        return (1 + 0.1 * rng.standard_normal(D)).astype(np.float32)

    hd = D // H
    inv_freq = (1.0 / 10000 ** (np.arange(0, hd, 2) / hd)).astype(np.float32)
    tensors = {
        "token_embedding.weight": (0.5 * rng.standard_normal((V, E))).astype(np.float32),
        "emb_proj.weight": linear(D, E),
        "norm_f.scale": scale(),
        "out_proj.weight": linear(E, D),
    }
    for i in range(L):
        tensors |= {
            f"layers.{i}.norm1.scale": scale(),
            f"layers.{i}.attn.qkv.weight": linear(3 * D, D),
            f"layers.{i}.attn.out.weight": linear(D, D),
            f"layers.{i}.attn.rotary.inv_freq": inv_freq,
            f"layers.{i}.norm2.scale": scale(),
            f"layers.{i}.ffn.w1.weight": linear(F, D),
            f"layers.{i}.ffn.w2.weight": linear(F, D),
            f"layers.{i}.ffn.w3.weight": linear(D, F),
        }
    save_file(tensors, path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "chaya-62m-random.safetensors")
