#!/usr/bin/env python3
"""Trains a small model of CHAYA-v1's architecture on a text file, for a
fixed time, and saves it as a CHAYA `.pt` checkpoint (the published format).

It is a stand-in for the trained CHAYA weights, which are not available here,
to measure what int8 quantization costs on weights that were trained rather
than drawn at random: it is NOT CHAYA, and its numbers are not CHAYA's.

    python3 benches/train_proxy.py --text corpus.txt --out proxy.pt \
        --heldout heldout.txt --minutes 45

The last `--heldout-fraction` of the text (cut at a paragraph break) is kept
out of training and written to `--heldout`. The forward pass is the spec's
(shared/spec/chaya-v1.md): CHAYA's RoPE variant, RMSNorm with eps inside the
root, SwiGLU, factorized tied embeddings, no biases. AdamW, linear warm-up and
cosine decay over the steps that fit in the time budget. Needs torch and
tokenizers.
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
from chaya_ref import ROPE_BASE, rmsnorm  # noqa: E402


def rope_tables(seq_len, head_dim):
    """cos/sin of CHAYA's angles, [T, hd]: ang[p, i] = p * inv_freq[i mod hd/2]."""
    j = torch.arange(head_dim // 2, dtype=torch.float64)
    inv_freq = 1.0 / (ROPE_BASE ** (2.0 * j / head_dim))
    ang = torch.arange(seq_len, dtype=torch.float64)[:, None] * torch.cat([inv_freq, inv_freq])[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float(), inv_freq.float()


def rope(x, cos, sin):
    """x: [B, H, T, hd]; rot(x) = concat(-x[1::2], x[0::2])."""
    rot = torch.cat([-x[..., 1::2], x[..., 0::2]], dim=-1)
    return x * cos + rot * sin


class Proxy(torch.nn.Module):
    def __init__(self, vocab, e_dim, d_model, layers, heads, seq_len):
        super().__init__()
        self.heads, self.d_model = heads, d_model
        ffn = 4 * d_model
        init = lambda *shape, std=0.02: torch.nn.Parameter(torch.randn(*shape) * std)
        out_std = 0.02 / math.sqrt(2 * layers)
        p = {
            "token_embedding.weight": init(vocab, e_dim),
            "emb_proj.weight": init(d_model, e_dim),
            "norm_f.scale": torch.nn.Parameter(torch.ones(d_model)),
            "out_proj.weight": init(e_dim, d_model),
        }
        for i in range(layers):
            p |= {
                f"layers.{i}.norm1.scale": torch.nn.Parameter(torch.ones(d_model)),
                f"layers.{i}.attn.qkv.weight": init(3 * d_model, d_model),
                f"layers.{i}.attn.out.weight": init(d_model, d_model, std=out_std),
                f"layers.{i}.norm2.scale": torch.nn.Parameter(torch.ones(d_model)),
                f"layers.{i}.ffn.w1.weight": init(ffn, d_model),
                f"layers.{i}.ffn.w2.weight": init(ffn, d_model),
                f"layers.{i}.ffn.w3.weight": init(d_model, ffn, std=out_std),
            }
        # ParameterDict keys may not contain dots.
        self.p = torch.nn.ParameterDict({k.replace(".", "/"): v for k, v in p.items()})
        self.layers = layers
        cos, sin, self.inv_freq = rope_tables(seq_len, d_model // heads)
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)

    def w(self, name):
        return self.p[name.replace(".", "/")]

    def forward(self, ids):
        B, T = ids.shape
        D, H = self.d_model, self.heads
        x = self.w("token_embedding.weight")[ids] @ self.w("emb_proj.weight").T
        cos, sin = self.cos[:T], self.sin[:T]
        for i in range(self.layers):
            w = lambda n: self.w(f"layers.{i}.{n}")
            h = rmsnorm(x, w("norm1.scale"))
            q, k, v = (h @ w("attn.qkv.weight").T).split(D, dim=-1)
            q, k, v = (t.reshape(B, T, H, D // H).transpose(1, 2) for t in (q, k, v))
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + a.transpose(1, 2).reshape(B, T, D) @ w("attn.out.weight").T
            h = rmsnorm(x, w("norm2.scale"))
            x = x + (F.silu(h @ w("ffn.w1.weight").T) * (h @ w("ffn.w2.weight").T)) @ w("ffn.w3.weight").T
        x = rmsnorm(x, self.w("norm_f.scale"))
        return (x @ self.w("out_proj.weight").T) @ self.w("token_embedding.weight").T

    def checkpoint(self, seq_len):
        """The published checkpoint layout: the wrapping dict of shared/spec."""
        sd = {k.replace("/", "."): v.detach().clone() for k, v in self.p.items()}
        for i in range(self.layers):
            sd[f"layers.{i}.attn.rotary.inv_freq"] = self.inv_freq.clone()
        vocab, e_dim = sd["token_embedding.weight"].shape
        return {"model_state_dict": sd, "vocab_size": vocab, "e_dim": e_dim, "d_model": self.d_model,
                "num_layers": self.layers, "num_heads": self.heads, "seq_len": seq_len}


def learning_rate(step, total_steps, peak, warmup):
    """Linear warm-up, then cosine decay to peak/10 at total_steps (None: not known yet)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if total_steps is None:
        return peak
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def split_text(text, heldout_fraction):
    """(training text, held-out text), cut at the paragraph break nearest the split point."""
    cut = text.rfind("\n\n", 0, int(len(text) * (1 - heldout_fraction)))
    return text[:cut], text[cut + 2:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--text", required=True, help="UTF-8 training text")
    ap.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    ap.add_argument("--heldout", required=True, help="where to write the held-out text")
    ap.add_argument("--tokenizer", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                        "tokenizer", "tokenizer.json"))
    ap.add_argument("--heldout-fraction", type=float, default=0.05)
    ap.add_argument("--minutes", type=float, default=45)
    ap.add_argument("--d-model", type=int, default=640)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--e-dim", type=int, default=192)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", help="start from this checkpoint's weights (same shapes), not random ones")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    train_text, heldout_text = split_text(open(args.text, encoding="utf-8").read(), args.heldout_fraction)
    with open(args.heldout, "w", encoding="utf-8") as f:
        f.write(heldout_text)
    tok = Tokenizer.from_file(args.tokenizer)
    ids = torch.tensor(tok.encode(train_text, add_special_tokens=False).ids)
    print(f"training tokens {len(ids)}, held-out characters {len(heldout_text)}", flush=True)

    model = Proxy(tok.get_vocab_size(), args.e_dim, args.d_model, args.layers, args.heads, args.seq_len)
    if args.init:
        with torch.no_grad():
            for name, value in torch.load(args.init, weights_only=True)["model_state_dict"].items():
                if not name.endswith("inv_freq"):
                    model.w(name).copy_(value)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    budget, warmup = args.minutes * 60, 50
    start, step, total_steps = time.monotonic(), 0, None
    while total_steps is None or step < total_steps:
        starts = torch.randint(0, len(ids) - args.seq_len - 1, (args.batch,))
        batch = torch.stack([ids[s:s + args.seq_len + 1] for s in starts])
        lr = learning_rate(step, total_steps, args.lr, warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed = time.monotonic() - start
        if step == 20:  # the step count that fits the budget, from the first steps' pace
            total_steps = max(warmup + 1, int(budget / (elapsed / step)))
        if step % 50 == 0 or step == total_steps:
            print(f"step {step}/{total_steps} loss {loss.item():.3f} lr {lr:.2e} {elapsed / 60:.1f} min", flush=True)
    torch.save(model.checkpoint(args.seq_len), args.out)
    print(f"saved {args.out} after {step} steps, {step * args.batch * args.seq_len} tokens", flush=True)


if __name__ == "__main__":
    main()
