"""chaya's int8 numerics on the float64 reference (chaya_ref.py), written from
their description (docs/performance.md, "How int8 runs", and the rounding the
doc comments of core/src/quant.rs and q8.rs state), not by translating the
kernels; plus variants chaya does not run, to judge them before writing kernels.

Every mode quantizes each large weight matrix as `chaya convert` does (int8,
one scale per output row, max|w|/127, round half away from zero; the
embedding rows are read dequantized) unless given a weight block (one scale
per `weight_block` input columns of a row instead, the granularity chaya did
not pick), and keeps keys and values in f16 as an int8 chaya model does. The
modes differ in the activations each product reads:

- `weights`: f32 activations (the weights' share of the error);
- `q8_0`: int8 in blocks of 32 with one scale each (what chaya runs: the
  goldens in tests/fixtures/tiny_int8_golden.json);
- `q7_0`: the same blocks within ±63 (7 bits: AVX2's `vpmaddubsw` could then
  take them offset to unsigned, without the sign fix-up it needs for 8);
- `token`: one scale per token (row) for the whole product;
- `token7`: the same within ±63 (AVX2's fastest exact kernel would take these);
- `tensor`: one scale for the whole activation matrix (ONNX Runtime's
  dynamic quantization, here symmetric).
"""
import math

import torch

from chaya_ref import ChayaRef, windows

BLOCK = 32
MODES = ("weights", "q8_0", "q7_0", "token", "token7", "tensor")


def round_away(x):
    """Round half away from zero (Rust's f32::round)."""
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)


def quantize(x, max_abs, levels=127):
    """Symmetric integers within ±levels, scale max_abs/levels (broadcast
    against x), dequantized."""
    scale = max_abs / levels
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.clamp(round_away(x / safe), -levels, levels) * scale


def quantize_blocks(x, block, levels=127):
    """x [R, K] with one scale per `block` consecutive values of a row."""
    pad = (-x.shape[-1]) % block  # zeros do not change a block's max
    blocks = torch.nn.functional.pad(x, (0, pad)).reshape(x.shape[0], -1, block)
    q = quantize(blocks, blocks.abs().amax(dim=-1, keepdim=True), levels)
    return q.reshape(x.shape[0], -1)[:, :x.shape[-1]]


def quantize_weight(w, block=None):
    """w [out, in]: one scale per row, or per `block` columns of a row."""
    return quantize(w, w.abs().amax(dim=1, keepdim=True)) if block is None else quantize_blocks(w, block)


def quantize_activations(x, mode):
    """x [T, K] as an int8 product of `mode` reads it."""
    if mode == "weights":
        return x
    if mode in ("token", "token7"):
        return quantize(x, x.abs().amax(dim=-1, keepdim=True), 63 if mode == "token7" else 127)
    if mode == "tensor":
        return quantize(x, x.abs().amax())
    return quantize_blocks(x, BLOCK, 63 if mode == "q7_0" else 127)


class QuantRef(ChayaRef):
    """The reference with int8 weights (scales per row, or per `weight_block`
    columns), int8 activations of `mode` and an f16 cache."""

    def __init__(self, sd, num_heads, mode, weight_block=None):
        quantized = dict(sd)
        for name, w in sd.items():
            if w.dim() == 2:
                quantized[name] = quantize_weight(w, weight_block)
        super().__init__(quantized, num_heads)
        self.mode = mode

    def linear(self, x, name):
        return quantize_activations(x, self.mode) @ self.w[name].T

    def stored(self, t):
        return t.to(torch.float16).to(torch.float64)


class Divergence:
    """A model's scores against a reference over the positions of a text:
    its perplexity, KL(reference ‖ model) and same top-1 token (`chaya
    compare` reports the same three)."""

    def __init__(self):
        self.nll = 0.0
        self.kl = []  # per position
        self.same_top1 = self.count = 0

    def add(self, logp, ref_logp, targets):
        self.nll -= float(logp[torch.arange(len(targets)), targets].sum())
        self.kl += (ref_logp.exp() * (ref_logp - logp)).sum(-1).tolist()
        self.same_top1 += int((logp.argmax(-1) == ref_logp.argmax(-1)).sum())
        self.count += len(targets)

    def perplexity(self):
        return math.exp(self.nll / self.count)

    def mean_kl(self):
        return sum(self.kl) / self.count

    def kl_quantile(self, q):
        """Nearest rank: the smallest KL with at least `q` of positions at or below it."""
        ranked = sorted(self.kl)
        return ranked[min(max(math.ceil(q * len(ranked)), 1), len(ranked)) - 1]

    def top1(self):
        return self.same_top1 / self.count


def divergences(reference, models, ids, ctx, progress=lambda done, total: None):
    """{name: Divergence} of each model in `models` against `reference` on
    `ids`, in ChayaRef.perplexity's windows (each reference window computed once)."""
    scores = {name: Divergence() for name in models}
    done = 0
    for win in windows(ids, ctx):
        targets = torch.as_tensor(win[1:], dtype=torch.long)
        ref_logp = torch.log_softmax(reference(win[:-1]), dim=-1)
        for name, model in models.items():
            logp = ref_logp if model is reference else torch.log_softmax(model(win[:-1]), dim=-1)
            scores[name].add(logp, ref_logp, targets)
        done += len(targets)
        progress(done, len(ids) - 1)
    return scores
