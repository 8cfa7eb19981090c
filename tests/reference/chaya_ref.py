"""Independent float64 PyTorch reference of CHAYA-v1.

Written from /work/shared/spec/chaya-v1.md only (not from the Rust code).
Everything is computed in float64; loaded weights (fp32/fp16/bf16) are upcast
exactly. The stored `inv_freq` buffers are ignored: RoPE frequencies are
recomputed from the spec formula.
"""
import math

import torch

CONFIG_KEYS = ("vocab_size", "e_dim", "d_model", "num_layers", "num_heads", "seq_len")
ROPE_BASE = 10000.0
RMS_EPS = 1e-8


def load_state_dict(path):
    """Load a checkpoint; return (state dict of float64 tensors, meta dict).

    Accepts a .safetensors file, a torch .pt holding the wrapping dict
    {"model_state_dict": ..., "vocab_size", ...}, or a bare state dict.
    A leading "module." on keys is stripped. `meta` holds the config ints of
    the wrapping dict (empty for bare dicts / safetensors).
    """
    path = str(path)
    meta = {}
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        sd = load_file(path)
    else:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, dict) and "model_state_dict" in obj:
            sd = obj["model_state_dict"]
            meta = {k: int(obj[k]) for k in CONFIG_KEYS if k in obj}
        else:
            sd = obj
    out = {}
    for k, v in sd.items():
        if k.startswith("module."):
            k = k[len("module."):]
        out[k] = v.detach().to(torch.float64)
    return out, meta


def rmsnorm(x, g):
    """g * x / sqrt(mean(x^2) + 1e-8), eps inside the square root."""
    return g * x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + RMS_EPS)


def rope(x, pos):
    """CHAYA's RoPE variant. x: [H, T, hd]; pos: [T] absolute positions (float64).

    inv_freq[j] = 1 / 10000^(2j/hd), ang[i] = p * inv_freq[i mod hd/2],
    rot(x) = concat(-x[1::2], x[0::2]), rope(x) = x*cos(ang) + rot(x)*sin(ang).
    """
    hd = x.shape[-1]
    half = hd // 2
    j = torch.arange(half, dtype=torch.float64)
    inv_freq = 1.0 / (ROPE_BASE ** (2.0 * j / hd))
    ang = pos[:, None] * torch.cat([inv_freq, inv_freq])[None, :]   # [T, hd]
    rot = torch.cat([-x[..., 1::2], x[..., 0::2]], dim=-1)
    return x * torch.cos(ang) + rot * torch.sin(ang)


class ChayaRef(torch.nn.Module):
    def __init__(self, sd, num_heads=None):
        """sd: float64 state dict (keys without "module."). num_heads is taken
        from the argument, else inferred from an inv_freq buffer (d_model / (2*len))."""
        super().__init__()
        self.w = sd
        self.n_layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("layers."))
        self.d_model = sd["emb_proj.weight"].shape[0]
        if num_heads is None:
            num_heads = self.d_model // (2 * sd["layers.0.attn.rotary.inv_freq"].shape[0])
        self.n_heads = num_heads
        self.head_dim = self.d_model // num_heads

    @classmethod
    def from_file(cls, path, num_heads=None):
        sd, meta = load_state_dict(path)
        return cls(sd, num_heads or meta.get("num_heads"))

    # The two places where int8_ref.py changes the arithmetic; here they are exact.
    def linear(self, x, name):
        """x · Wᵀ for the weight `name`, stored [out, in]."""
        return x @ self.w[name].T

    def stored(self, t):
        """Keys or values as attention reads them back (rotated keys, values)."""
        return t

    def _layer(self, i, x, pos, cache):
        w = lambda n: self.w[f"layers.{i}.{n}"]
        T, D, H, hd = x.shape[0], self.d_model, self.n_heads, self.head_dim
        h = rmsnorm(x, w("norm1.scale"))
        q, k, v = self.linear(h, f"layers.{i}.attn.qkv.weight").split(D, dim=-1)
        # [T, D] -> [H, T, hd]; head h takes columns h*hd .. h*hd+hd-1
        q, k, v = (t.reshape(T, H, hd).transpose(0, 1) for t in (q, k, v))
        q, k = rope(q, pos), rope(k, pos)
        k, v = self.stored(k), self.stored(v)
        kpos = pos
        if cache is not None:  # keys are cached already rotated at their true positions
            if i in cache:
                pk, pv, pp = cache[i]
                k, v, kpos = torch.cat([pk, k], 1), torch.cat([pv, v], 1), torch.cat([pp, pos])
            cache[i] = (k, v, kpos)
        s = q @ k.transpose(1, 2) / math.sqrt(hd)
        s = s.masked_fill(kpos[None, None, :] > pos[None, :, None], float("-inf"))
        a = torch.softmax(s, dim=-1) @ v                           # [H, T, hd]
        x = x + self.linear(a.transpose(0, 1).reshape(T, D), f"layers.{i}.attn.out.weight")
        h = rmsnorm(x, w("norm2.scale"))
        f = torch.nn.functional.silu(self.linear(h, f"layers.{i}.ffn.w1.weight")) \
            * self.linear(h, f"layers.{i}.ffn.w2.weight")
        return x + self.linear(f, f"layers.{i}.ffn.w3.weight")

    def forward(self, ids, start_pos=0, cache=None):
        """Logits [T, vocab] (float64) for ids at positions start_pos..start_pos+T-1.
        Pass a dict as `cache` to keep K/V across calls (incremental decoding)."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        pos = torch.arange(start_pos, start_pos + len(ids), dtype=torch.float64)
        x = self.linear(self.w["token_embedding.weight"][ids], "emb_proj.weight")
        for i in range(self.n_layers):
            x = self._layer(i, x, pos, cache)
        x = rmsnorm(x, self.w["norm_f.scale"])
        return self.linear(self.linear(x, "out_proj.weight"), "token_embedding.weight")

    @torch.no_grad()
    def greedy(self, ids, n, ctx):
        """Greedy continuation: each step re-runs the last `ctx` tokens from position 0
        (no cache) and appends the argmax of the last row. Returns the n new ids."""
        seq = list(ids)
        for _ in range(n):
            seq.append(int(self.forward(seq[-ctx:])[-1].argmax()))
        return seq[len(ids):]

    @torch.no_grad()
    def perplexity(self, ids, ctx):
        """Non-overlapping windows: window k = ids[k*ctx : k*ctx+ctx+1], inputs are its
        first len-1 tokens (positions from 0), each next token is the target; a last
        partial window with >= 2 tokens is scored too. Returns (ppl, n_targets, mean_nll)."""
        nll, count = 0.0, 0
        for win in windows(ids, ctx):
            logp = torch.log_softmax(self.forward(win[:-1]), dim=-1)
            tgt = torch.as_tensor(win[1:], dtype=torch.long)
            nll -= float(logp[torch.arange(len(tgt)), tgt].sum())
            count += len(tgt)
        mean = nll / count
        return math.exp(mean), count, mean


def windows(ids, ctx):
    """The perplexity windows of `ids`: ids[k*ctx : k*ctx+ctx+1] for k = 0, 1, ...
    while one holds at least 2 tokens (inputs all but the last, targets all but the first)."""
    for start in range(0, len(ids) - 1, ctx):
        yield ids[start:start + ctx + 1]


def encode(text, tokenizer_path):
    """GPT-2 BPE ids via the `tokenizers` package, no special tokens added."""
    from tokenizers import Tokenizer
    return Tokenizer.from_file(str(tokenizer_path)).encode(text, add_special_tokens=False).ids
