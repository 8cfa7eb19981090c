#!/usr/bin/env python3
"""Exports CHAYA-v1 with a KV cache to ONNX (f32), and an int8 version made by
ONNX Runtime's `quantize_dynamic` (per-channel int8 weights), for the peer
benchmark (benches/peers.py).

    python3 benches/export_onnx.py CHECKPOINT OUT_DIR

The graph: inputs `ids` [1, T] (int64), `start` (int64 scalar, = P) and, per
layer i, `past_k_i`, `past_v_i` [heads, P, head_dim] (f32; P = 0 for a fresh
prompt); outputs `logits` [1, vocab] of the last position and `present_k_i`,
`present_v_i` [heads, P+T, head_dim]. One graph serves prefill and decode. The
cache is one tensor per layer (as Hugging Face's exports have it), so a step
copies each layer's cache once (its concat), not also into and out of a
stacked tensor. The
arithmetic follows ../shared/spec/chaya-v1.md (CHAYA's RoPE, RMSNorm with eps
1e-8 inside the root, SwiGLU, factorized tied embeddings), in float32.
"""
import math
import os
import sys

import torch

RMS_EPS = 1e-8
ROPE_BASE = 10000.0


def load_state_dict(path):
    """Float32 state dict from a .safetensors state dict or a .pt checkpoint."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file
        sd = load_file(str(path))
    else:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        sd = obj.get("model_state_dict", obj)
    return {k.removeprefix("module."): v.float() for k, v in sd.items()}


class CachedChaya(torch.nn.Module):
    """CHAYA-v1 in float32 with an explicit KV cache, one key and one value
    tensor per layer."""

    def __init__(self, sd, num_heads):
        super().__init__()
        self.w = torch.nn.ParameterDict({k.replace(".", "__"): torch.nn.Parameter(v, requires_grad=False)
                                         for k, v in sd.items() if "inv_freq" not in k})
        self.layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("layers."))
        self.vocab_size, _ = sd["token_embedding.weight"].shape
        self.d_model = sd["emb_proj.weight"].shape[0]
        self.heads = num_heads
        self.head_dim = self.d_model // num_heads
        half = self.head_dim // 2
        inv_freq = 1.0 / (ROPE_BASE ** (2.0 * torch.arange(half, dtype=torch.float64) / self.head_dim))
        self.register_buffer("freqs", torch.cat([inv_freq, inv_freq]).float())

    @classmethod
    def from_checkpoint(cls, path):
        sd = load_state_dict(path)
        inv_freq = sd.get("layers.0.attn.rotary.inv_freq")
        d_model = sd["emb_proj.weight"].shape[0]
        heads = d_model // (2 * inv_freq.shape[0]) if inv_freq is not None else 8
        return cls(sd, heads)

    def cache_names(self, kind):
        """`kind`_k_0, `kind`_v_0, `kind`_k_1, ...: the cache's inputs or outputs."""
        return [f"{kind}_{kv}_{i}" for i in range(self.layers) for kv in "kv"]

    def empty_cache(self, length=0):
        """past_k_0, past_v_0, ...: zeros [heads, length, head_dim]."""
        return [torch.zeros(self.heads, length, self.head_dim) for _ in range(2 * self.layers)]

    def p(self, name):
        return self.w[name.replace(".", "__")]

    @staticmethod
    def rmsnorm(x, g):
        return g * x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + RMS_EPS)

    def rope(self, x, pos):
        """CHAYA's RoPE: rot(x) = concat(-x[1::2], x[0::2]) over the head."""
        ang = pos[:, None] * self.freqs[None, :]
        rot = torch.cat([-x[..., 1::2], x[..., 0::2]], dim=-1)
        return x * torch.cos(ang) + rot * torch.sin(ang)

    def forward(self, ids, start, *past):
        """(last position's logits, present_k_0, present_v_0, ...)."""
        ids = ids[0]
        t = ids.shape[0]
        pos = (start + torch.arange(t)).float()
        key_pos = torch.arange(past[0].shape[1] + t).float()
        mask = key_pos[None, :] > pos[:, None]
        x = self.p("token_embedding.weight")[ids] @ self.p("emb_proj.weight").T
        present = []
        d, h, hd = self.d_model, self.heads, self.head_dim
        for i in range(self.layers):
            w = lambda n: self.p(f"layers.{i}.{n}")
            y = self.rmsnorm(x, w("norm1.scale"))
            q, k, v = (y @ w("attn.qkv.weight").T).split(d, dim=-1)
            q, k, v = (z.reshape(t, h, hd).transpose(0, 1) for z in (q, k, v))
            q, k = self.rope(q, pos), self.rope(k, pos)
            k = torch.cat([past[2 * i], k], dim=1)
            v = torch.cat([past[2 * i + 1], v], dim=1)
            present += [k, v]
            s = (q @ k.transpose(1, 2)) / math.sqrt(hd)
            s = s.masked_fill(mask[None], float("-inf"))
            a = torch.softmax(s, dim=-1) @ v
            x = x + a.transpose(0, 1).reshape(t, d) @ w("attn.out.weight").T
            y = self.rmsnorm(x, w("norm2.scale"))
            f = torch.nn.functional.silu(y @ w("ffn.w1.weight").T) * (y @ w("ffn.w2.weight").T)
            x = x + f @ w("ffn.w3.weight").T
        last = self.rmsnorm(x[-1:], self.p("norm_f.scale"))
        logits = (last @ self.p("out_proj.weight").T) @ self.p("token_embedding.weight").T
        return (logits, *present)


def export(model, out_dir):
    """Writes chaya.onnx (f32) and chaya-int8.onnx into out_dir; returns their paths."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    f32_path = os.path.join(out_dir, "chaya.onnx")
    int8_path = os.path.join(out_dir, "chaya-int8.onnx")
    past, present = model.cache_names("past"), model.cache_names("present")
    with torch.no_grad():
        torch.onnx.export(
            model, (torch.tensor([[1, 2]]), torch.tensor(3), *model.empty_cache(3)), f32_path,
            input_names=["ids", "start", *past],
            output_names=["logits", *present],
            dynamic_axes={"ids": {1: "T"}, **{n: {1: "P"} for n in past},
                          **{n: {1: "PT"} for n in present}},
            opset_version=17, dynamo=False)
    quantize_dynamic(f32_path, int8_path, per_channel=True, weight_type=QuantType.QInt8)
    for path in (f32_path, int8_path):
        print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB")
    return f32_path, int8_path


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    os.makedirs(sys.argv[2], exist_ok=True)
    export(CachedChaya.from_checkpoint(sys.argv[1]).eval(), sys.argv[2])
