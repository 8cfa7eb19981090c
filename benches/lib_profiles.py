#!/usr/bin/env python3
"""Speed of builds of libchaya_uniffi.so made with different Cargo profiles
(e.g. `release` against the size-optimized `mobile`), measured in ONE run
through the Python bindings, so the size/speed trade of a profile is a ratio
against its peer on the same machine:

    cargo build --release -p chaya-uniffi
    cargo build --profile mobile -p chaya-uniffi
    python3 benches/lib_profiles.py -m /tmp/chaya-62m-int8.safetensors \\
        target/release/libchaya_uniffi.so target/mobile/libchaya_uniffi.so

Each library runs in its own process (the module loads one library), in
alternation, --runs times; reported: the median load time, time to first
token and decode speed of a greedy 64-token generation after a 200-token
prompt, and the library's stripped size.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(lib, model_path, threads):
    """One run in this process: {load_ms, first_token_ms, decode_tok_s}."""
    folder = tempfile.mkdtemp(prefix="chaya-profile-")
    os.symlink(os.path.join(ROOT, "bindings", "python", "chaya.py"), os.path.join(folder, "chaya.py"))
    os.symlink(os.path.abspath(lib), os.path.join(folder, "libchaya_uniffi.so"))
    sys.path.insert(0, folder)
    import chaya

    class Ignore(chaya.TokenSink):
        def on_token(self, text):
            return True

    start = time.perf_counter()
    model = chaya.Model.from_path(model_path, chaya.LoadOptions(threads=threads))
    load_ms = (time.perf_counter() - start) * 1e3
    prompt = model.decode([(i * 7919 + 13) % model.vocab_size() for i in range(200)])
    options = chaya.GenerateOptions(max_tokens=64, temperature=0.0, stop_at_eos=False)
    summary = model.new_session().generate(prompt, options, Ignore())
    return {
        "load_ms": load_ms,
        "first_token_ms": summary.time_to_first_token_ms,
        "decode_tok_s": summary.decode_tokens_per_second,
    }


def stripped_size(lib):
    with tempfile.NamedTemporaryFile() as out:
        subprocess.run(["strip", "-o", out.name, lib], check=True)
        return os.path.getsize(out.name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("libs", nargs="+", help="libchaya_uniffi.so builds to compare")
    parser.add_argument("-m", "--model", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.libs[0], args.model, args.threads)))
        return
    runs = {lib: [] for lib in args.libs}
    for _ in range(args.runs):
        for lib in args.libs:
            out = subprocess.run(
                [sys.executable, __file__, "--one", "-m", args.model, "--threads", str(args.threads), lib],
                check=True, capture_output=True, text=True,
            ).stdout
            runs[lib].append(json.loads(out))
    first = args.libs[0]
    print(f"{args.threads} threads, median of {args.runs} runs; ratios against {first}\n")
    print("| library | stripped MB | load ms | first token ms | decode tok/s | decode ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    medians = {lib: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for lib, rs in runs.items()}
    for lib, m in medians.items():
        print(f"| {lib} | {stripped_size(lib) / 2**20:.2f} | {m['load_ms']:.1f} | {m['first_token_ms']:.1f} "
              f"| {m['decode_tok_s']:.1f} | {m['decode_tok_s'] / medians[first]['decode_tok_s']:.2f}× |")


if __name__ == "__main__":
    main()
