#!/usr/bin/env python3
"""Perplexity of a CHAYA checkpoint under int8 numerics simulated in float64
(tests/reference/int8_ref.py: chaya's, and variants it does not run), against
the float64 reference, to judge a numerics change before writing kernels.

    python3 benches/quant_sim.py CHECKPOINT --text FILE [--ctx 256] [--modes q8_0,token]

Needs torch and tokenizers.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
from chaya_ref import ChayaRef, encode, load_state_dict  # noqa: E402
from int8_ref import MODES, QuantRef  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--text", required=True)
    ap.add_argument("--tokenizer", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                        "tokenizer", "tokenizer.json"))
    ap.add_argument("--ctx", type=int, default=256, help="perplexity window (as chaya compare's --ctx)")
    ap.add_argument("--max-tokens", type=int, default=None, help="score only the text's first N tokens")
    ap.add_argument("--modes", default=",".join(MODES))
    args = ap.parse_args()
    modes = args.modes.split(",")
    if not set(modes) <= set(MODES):
        ap.error(f"--modes: choose from {', '.join(MODES)}")

    sd, meta = load_state_dict(args.checkpoint)
    ids = encode(open(args.text, encoding="utf-8").read(), args.tokenizer)[:args.max_tokens]
    base, count, _ = ChayaRef(sd, meta.get("num_heads")).perplexity(ids, args.ctx)
    print(f"{count} tokens scored, windows of {args.ctx}")
    print(f"{'float64':8} perplexity {base:.4f}")
    for mode in modes:
        ppl, _, _ = QuantRef(sd, meta.get("num_heads"), mode).perplexity(ids, args.ctx)
        print(f"{mode:8} perplexity {ppl:.4f} ({(ppl / base - 1) * 100:+.3f}%)", flush=True)


if __name__ == "__main__":
    main()
