#!/usr/bin/env python3
"""How far int8 numerics simulated in float64 (tests/reference/int8_ref.py:
chaya's, and variants it does not run) move a CHAYA checkpoint from the
float64 reference: perplexity, KL divergence from the reference's next-token
distribution (mean, 99th percentile, max over positions), and how often both
rank the same token first. To judge a numerics change before writing kernels.

    python3 benches/quant_sim.py CHECKPOINT --text FILE [--ctx 256] [--variants q8_0,token,q8_0:32]

A variant is an activation mode of int8_ref.py, with int8 weights scaled per
row as chaya stores them, or MODE:N with one weight scale per N columns of a
row instead. KL divergence tells variants apart where perplexity moves less
than its noise (llama.cpp's perplexity tool reports it for the same reason).
Needs torch and tokenizers, and memory for one float64 copy of the weights
per variant (0.5 GB each for CHAYA's 62M): pass fewer --variants on a small
machine.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
from chaya_ref import ChayaRef, encode, load_state_dict  # noqa: E402
from int8_ref import MODES, QuantRef, divergences  # noqa: E402

VARIANTS = MODES + ("weights:32", "weights:64", "q8_0:32", "q8_0:64")


def parse_variant(text):
    """'q8_0' -> ('q8_0', None); 'q8_0:32' -> ('q8_0', 32); ValueError if unknown."""
    mode, _, block = text.partition(":")
    if mode not in MODES or (block and (not block.isdigit() or int(block) == 0)):
        raise ValueError(text)
    return mode, int(block) if block else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--text", required=True)
    ap.add_argument("--tokenizer", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                        "tokenizer", "tokenizer.json"))
    ap.add_argument("--ctx", type=int, default=256, help="perplexity window (as chaya compare's --ctx)")
    ap.add_argument("--max-tokens", type=int, default=None, help="score only the text's first N tokens")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"MODE or MODE:N, MODE one of {', '.join(MODES)}")
    args = ap.parse_args()
    try:
        variants = {v: parse_variant(v) for v in args.variants.split(",")}
    except ValueError as e:
        ap.error(f"--variants: {e} is not MODE or MODE:N with MODE one of {', '.join(MODES)}")

    sd, meta = load_state_dict(args.checkpoint)
    heads = meta.get("num_heads")
    ids = encode(open(args.text, encoding="utf-8").read(), args.tokenizer)[:args.max_tokens]
    reference = ChayaRef(sd, heads)
    models = {"float64": reference}
    models.update({v: QuantRef(sd, heads, mode, block) for v, (mode, block) in variants.items()})
    scores = divergences(reference, models, ids, args.ctx, lambda done, total: print(
        f"\r{done}/{total} tokens", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)

    base = scores["float64"].perplexity()
    print(f"{scores['float64'].count} tokens scored, windows of {args.ctx}")
    print(f"{'variant':12} {'perplexity':>11} {'vs float64':>10} {'mean KL':>10} {'p99 KL':>10} "
          f"{'max KL':>10} {'same top-1':>10}")
    for v, s in scores.items():
        ppl = s.perplexity()
        print(f"{v:12} {ppl:11.4f} {(ppl / base - 1) * 100:+9.3f}% {s.mean_kl():10.2e} "
              f"{s.kl_quantile(0.99):10.2e} {s.kl_quantile(1.0):10.2e} {s.top1() * 100:9.2f}%", flush=True)


if __name__ == "__main__":
    main()
