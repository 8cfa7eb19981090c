#!/usr/bin/env python3
"""CHAYA speed against its peers, measured in ONE run on one machine:
PyTorch (the original no-cache loop, and with a KV cache), ONNX Runtime (an
ONNX export of the same model with a KV cache, in f32 and dynamically quantized
int8 per-channel weights, the latter also with `session.x64quantprecision`),
then `chaya bench`; prints each peer's logits against PyTorch, a markdown
table and the ratios chaya / peer.

    python3 benches/make_random_checkpoint.py /tmp/chaya-62m-random.safetensors
    chaya convert /tmp/chaya-62m-random.safetensors -o /tmp/chaya-62m-int8.safetensors
    chaya convert /tmp/chaya-62m-random.safetensors -o /tmp/chaya-62m-f32.safetensors --dtype f32
    python3 benches/peers.py --checkpoint /tmp/chaya-62m-random.safetensors \\
        --int8 /tmp/chaya-62m-int8.safetensors --f32 /tmp/chaya-62m-f32.safetensors

Needs torch, onnx, onnxruntime, safetensors (pip). Every peer runs the same
measurements as `chaya bench`: first token for a 16-token prompt, prefill of 64
and 256 tokens, and decode of 32 greedy tokens after a 200-token prompt, in one
warm session per peer. Every engine times a prefill after one untimed prompt
of the same length; `chaya bench` times its first token right after loading
the model (cold; the peers' sessions are warm). The --runs rounds interleave
the engines (each round measures every engine once, `chaya bench --runs 1` per
round), so a change in the machine's load during the run reaches all of them
alike; the table shows medians over the rounds, the ratios the median and
range of each round's ratio.
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import tempfile
import time

import numpy as np
import torch

from export_onnx import CachedChaya, export


def prompt(n, vocab):
    """The deterministic prompt `chaya bench` uses."""
    return [(i * 7919 + 13) % vocab for i in range(n)]


class TorchNoCache:
    """The original CLI's loop: every token re-runs the whole sequence."""

    def __init__(self, model):
        self.model = model

    def logits(self, ids):
        with torch.no_grad():
            return self.model(torch.tensor([ids]), torch.tensor(0), *self.model.empty_cache())[0]

    def prefill(self, ids):
        self.seq = list(ids)
        return self.logits(self.seq)

    def step(self, token):
        self.seq.append(token)
        return self.logits(self.seq)


class TorchCached:
    """The same module, feeding only new tokens against its KV cache."""

    def __init__(self, model):
        self.model = model

    def run(self, ids):
        with torch.no_grad():
            logits, *self.past = self.model(torch.tensor([ids]), torch.tensor(self.pos), *self.past)
        self.pos += len(ids)
        return logits

    def prefill(self, ids):
        self.past = self.model.empty_cache()
        self.pos = 0
        return self.run(ids)

    def step(self, token):
        return self.run([token])


class Ort:
    """An ONNX Runtime session of the exported graph. `exact` sets
    `session.x64quantprecision`: on x86 CPUs without VNNI, ORT's default int8
    kernels multiply u8 activations by s8 weights with `vpmaddubsw`, whose 16-bit
    pair sums can saturate; with it, ORT converts such weights to u8 and runs
    u8 × u8 kernels that cannot.

    The cache stays in ORT's own tensors (`OrtValue`s): each step's present
    tensors are the next step's past ones, never copied to numpy and back."""

    def __init__(self, path, threads, model, exact=False):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if exact:
            options.add_session_config_entry("session.x64quantprecision", "1")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.value = ort.OrtValue.ortvalue_from_numpy
        self.past_names = model.cache_names("past")
        self.outputs = ["logits", *model.cache_names("present")]
        self.empty = [self.value(t.numpy()) for t in model.empty_cache()]

    def run(self, ids):
        inputs = {"ids": self.value(np.array([ids], dtype=np.int64)),
                  "start": self.value(np.array(self.pos, dtype=np.int64)),
                  **dict(zip(self.past_names, self.past))}
        logits, *self.past = self.session.run_with_ort_values(self.outputs, inputs)
        self.pos += len(ids)
        return logits.numpy()

    def prefill(self, ids):
        self.past = self.empty
        self.pos = 0
        return self.run(ids)

    def step(self, token):
        return self.run([token])


def measure(engine, vocab, decode_tokens):
    """The `chaya bench` measurements of one engine, once each, as {name: value}."""
    def prefill_time(n, warm=True):
        ids = prompt(n, vocab)
        if warm:  # as `chaya bench`: one untimed prompt of the same length first
            engine.prefill(ids)
        start = time.perf_counter()
        engine.prefill(ids)
        return time.perf_counter() - start

    def decode_speed(context):
        token = int(np.argmax(engine.prefill(prompt(context, vocab))))
        start = time.perf_counter()
        for _ in range(decode_tokens):
            token = int(np.argmax(engine.step(token)))
        return decode_tokens / (time.perf_counter() - start)

    return {
        "first token (16-token prompt)": prefill_time(16, warm=False) * 1e3,
        "prefill 64 tokens": 64 / prefill_time(64),
        "prefill 256 tokens": 256 / prefill_time(256),
        "decode at context 200": decode_speed(200),
    }


def chaya_bench(binary, model, threads, decode_tokens):
    """One run of every `chaya bench` measurement, as {name: value}, and the
    int8 kernel set it ran."""
    out = subprocess.run([binary, "bench", "-m", model, "--threads", str(threads),
                          "--decode-tokens", str(decode_tokens), "--runs", "1", "--json"],
                         check=True, capture_output=True, text=True)
    report = json.loads(out.stdout)
    return {name: m["median"] for name, m in report["metrics"].items()}, report["int8_kernels"]


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    import onnxruntime
    return f"{cpu}, {os.cpu_count()} cores; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="CHAYA state dict (.safetensors or .pt)")
    parser.add_argument("--int8", required=True, help="chaya int8 model file of the same weights")
    parser.add_argument("--f32", required=True, help="chaya f32 model file of the same weights")
    parser.add_argument("--chaya", default="target/release/chaya", help="the chaya binary")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = CachedChaya.from_checkpoint(args.checkpoint).eval()
    vocab = model.vocab_size
    # The ONNX files (~360 MB) are read into the sessions, then removed.
    with tempfile.TemporaryDirectory(prefix="chaya-peers-") as workdir:
        f32_onnx, int8_onnx = export(model, workdir)
        engines = {
            "PyTorch, no cache (original CLI)": TorchNoCache(model),
            "PyTorch, KV cache": TorchCached(model),
            "ONNX Runtime f32": Ort(f32_onnx, args.threads, model),
            "ONNX Runtime int8": Ort(int8_onnx, args.threads, model),
            "ONNX Runtime int8, x64quantprecision": Ort(int8_onnx, args.threads, model,
                                                        exact=True),
        }
    check = prompt(20, vocab)
    reference = engines["PyTorch, no cache (original CLI)"].prefill(check).numpy()
    for name, engine in list(engines.items())[1:]:
        got = np.asarray(engine.prefill(check)).reshape(-1)
        diff = np.abs(got - reference.reshape(-1)).max() / np.abs(reference).max()
        print(f"{name}: last-position logits within {diff:.1e} × max|logit| of PyTorch")

    chaya = {"chaya f32": args.f32, "chaya int8": args.int8}
    samples = {name: {} for name in [*engines, *chaya]}

    def record(name, row):
        for metric, value in row.items():
            samples[name].setdefault(metric, []).append(value)

    for number in range(args.runs):
        print(f"round {number + 1} of {args.runs} ...", flush=True)
        for name, engine in engines.items():
            # The original loop is slow and steady: one round is enough.
            if number == 0 or "no cache" not in name:
                record(name, measure(engine, vocab, args.decode_tokens))
        for name, path in chaya.items():
            row, kernels = chaya_bench(args.chaya, path, args.threads, args.decode_tokens)
            record(name, row)
    results = {name: {metric: statistics.median(values) for metric, values in row.items()}
               for name, row in samples.items()}

    metrics = list(next(iter(results.values())).keys())
    print(f"\n{machine()}; {args.threads} threads, median of {args.runs} interleaved rounds; "
          f"chaya's int8 kernels: {kernels}\n")
    print("| engine | " + " | ".join(metrics) + " |")
    print("|---|" + "---:|" * len(metrics))
    for name, row in results.items():
        print(f"| {name} | " + " | ".join(f"{row.get(m, math.nan):.1f}" for m in metrics) + " |")
    print("\nchaya int8 / peer (> 1 means chaya is better; for first-token time, peer / chaya), "
          "median of the rounds' ratios and their range:\n")
    ratios = {}
    for name, row in samples.items():
        if name == "chaya int8":
            continue
        ratios[name] = {}
        for m in metrics:
            # Round by round; the original loop's one sample against round 1.
            pairs = zip(samples["chaya int8"][m], row[m])
            ratios[name][m] = [peer / ours if "first token" in m else ours / peer
                               for ours, peer in pairs]
        cells = [f"{statistics.median(r):.2f}× ({min(r):.2f}-{max(r):.2f})"
                 for r in ratios[name].values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "threads": args.threads, "int8_kernels": kernels,
                       "results": results, "samples": samples, "ratios": ratios}, f, indent=2)

if __name__ == "__main__":
    main()
