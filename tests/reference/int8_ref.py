"""chaya's int8 numerics on the float64 reference (chaya_ref.py), written from
their description (docs/performance.md, "How int8 runs", and the rounding the
doc comments of core/src/quant.rs and q8.rs state), not by translating the
kernels; plus variants chaya does not run, to judge them before writing kernels.

Every mode quantizes each large weight matrix as `chaya convert` does (int8,
one scale per output row, max|w|/127, round half away from zero; the
embedding rows are read dequantized) and keeps keys and values in f16 as an
int8 chaya model does. They differ in the activations each product reads:

- `weights`: f32 activations (the weights' share of the error);
- `q8_0`: int8 in blocks of 32 with one scale each (what chaya runs: the
  goldens in tests/fixtures/tiny_int8_golden.json);
- `q7_0`: the same blocks within ±63 (7 bits: AVX2's `vpmaddubsw` could then
  take them offset to unsigned, without the sign fix-up it needs for 8);
- `token`: one scale per token (row) for the whole product;
- `tensor`: one scale for the whole activation matrix (ONNX Runtime's
  dynamic quantization, here symmetric).
"""
import torch

from chaya_ref import ChayaRef

BLOCK = 32
MODES = ("weights", "q8_0", "q7_0", "token", "tensor")


def round_away(x):
    """Round half away from zero (Rust's f32::round)."""
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)


def quantize(x, max_abs, levels=127):
    """Symmetric integers within ±levels, scale max_abs/levels (broadcast
    against x), dequantized."""
    scale = max_abs / levels
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.clamp(round_away(x / safe), -levels, levels) * scale


def quantize_activations(x, mode):
    """x [T, K] as an int8 product of `mode` reads it."""
    if mode == "weights":
        return x
    if mode == "token":
        return quantize(x, x.abs().amax(dim=-1, keepdim=True))
    if mode == "tensor":
        return quantize(x, x.abs().amax())
    pad = (-x.shape[-1]) % BLOCK  # zeros do not change a block's max
    blocks = torch.nn.functional.pad(x, (0, pad)).reshape(x.shape[0], -1, BLOCK)
    q = quantize(blocks, blocks.abs().amax(dim=-1, keepdim=True), 63 if mode == "q7_0" else 127)
    return q.reshape(x.shape[0], -1)[:, :x.shape[-1]]


class QuantRef(ChayaRef):
    """The reference with int8 weights, int8 activations of `mode` and an f16 cache."""

    def __init__(self, sd, num_heads, mode):
        quantized = dict(sd)
        for name, w in sd.items():
            if w.dim() == 2:
                quantized[name] = quantize(w, w.abs().amax(dim=1, keepdim=True))
        super().__init__(quantized, num_heads)
        self.mode = mode

    def linear(self, x, name):
        return quantize_activations(x, self.mode) @ self.w[name].T

    def stored(self, t):
        return t.to(torch.float16).to(torch.float64)
