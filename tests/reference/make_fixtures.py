"""Regenerate every file in tests/fixtures/ (deterministic).

    pip install torch numpy safetensors tokenizers
    python3 tests/reference/make_fixtures.py

Goldens are float64 results of chaya_ref.py (independent reference written
from the spec). See tests/reference/README.md for the file list.
"""
import json
import math
import os
import sys
import zipfile

import numpy as np
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from chaya_ref import ChayaRef, encode, load_state_dict  # noqa: E402
from int8_ref import QuantRef, divergences  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(ROOT, "tests", "fixtures")
TOKENIZER = os.path.join(ROOT, "assets", "tokenizer.json")

TEXT = """\
The Lighthouse Keeper's Ledger

Every evening at a quarter past six, Odile climbed the hundred and twelve steps of the old lighthouse and wrote three lines in a ledger that nobody had asked her to keep. The first line recorded the wind. The second recorded the colour of the water, which she described with an honesty that bordered on stubbornness: "grey, the grey of a spoon left in the sink," or "green, but only near the rocks." The third line was for whatever she had noticed that day and could not explain.

She had taken the post after leaving a job in Zürich, where she had spent eleven years reading other people's résumés and deciding, in a few minutes each, whether their lives were interesting enough to continue. The lighthouse paid less. It also asked less of her judgement, which she found restful. The lamp had been automated decades earlier; her real duties were to oil the hinges, chase gulls from the gallery, and answer the occasional letter from a schoolchild who wanted to know whether ghosts were real.

"Not that I have seen," she would write back, "but I have only been looking for four winters."

In the village below there was a café with six tables and a piano that nobody tuned. The owner, a broad, cheerful man named Tomás, served a soup that changed with the weather and a bread so dense it could have been used as ballast. He considered Odile naïve about fishing and wise about almost everything else, and he told her so, often, while refilling her cup without asking.

One March, the ledger's third line began to repeat itself. "A light on the water, far out, for a moment only." She wrote it on Monday, again on Wednesday, and twice on Friday. She checked the charts, the shipping notices, the phases of the moon. Nothing explained it. Tomás suggested a fisherman with a lantern; the harbourmaster suggested she was tired; the schoolchildren, when she mentioned it in a reply, suggested pirates with great enthusiasm.

On the last night of the month she stayed on the gallery long after the three lines were written. The wind dropped. The sea went flat and dark, the colour of a piano lid. Then, very far out, the light appeared again, steady for a breath, and went out. A moment later her own lamp swept across the same patch of water, and she understood: it was her beam, returned from a low bank of fog that formed only when the evening air cooled quickly over warm water. The lighthouse had been talking to itself.

She laughed out loud, alone, one hundred and twelve steps above the sea. In the ledger she wrote: "Explained. Reflection off fog. Not a ghost, not a pirate, not a ship." Then, after a pause, she added a fourth line, which broke her own rule: "Still beautiful."

🌊 ☕ 📖 — sea, coffee, ledger.

The next morning she told Tomás over a bowl of soup. He shrugged, pleased, and said that most mysteries end that way: with something ordinary, seen from the right distance, at the right hour.
"""

TINY = dict(vocab_size=50257, e_dim=8, d_model=32, num_layers=2, num_heads=2, seq_len=64)
MICRO = dict(vocab_size=64, e_dim=4, d_model=8, num_layers=1, num_heads=2, seq_len=16)
FULL = dict(vocab_size=50257, e_dim=192, d_model=640, num_layers=8, num_heads=8, seq_len=256)


def shapes(cfg):
    """(key, shape, kind) in state-dict order; kind in {emb, linear, norm, inv_freq}."""
    V, E, D = cfg["vocab_size"], cfg["e_dim"], cfg["d_model"]
    F = 4 * D
    out = [("token_embedding.weight", (V, E), "emb"), ("emb_proj.weight", (D, E), "linear")]
    for i in range(cfg["num_layers"]):
        p = f"layers.{i}."
        out += [
            (p + "norm1.scale", (D,), "norm"),
            (p + "attn.qkv.weight", (3 * D, D), "linear"),
            (p + "attn.out.weight", (D, D), "linear"),
            (p + "attn.rotary.inv_freq", (D // cfg["num_heads"] // 2,), "inv_freq"),
            (p + "norm2.scale", (D,), "norm"),
            (p + "ffn.w1.weight", (F, D), "linear"),
            (p + "ffn.w2.weight", (F, D), "linear"),
            (p + "ffn.w3.weight", (D, F), "linear"),
        ]
    out += [("norm_f.scale", (D,), "norm"), ("out_proj.weight", (E, D), "linear")]
    return out


def random_state(cfg, seed):
    """fp32 weights from torch.randn with the given seed, drawn in state-dict order."""
    torch.manual_seed(seed)
    hd = cfg["d_model"] // cfg["num_heads"]
    sd = {}
    for name, shape, kind in shapes(cfg):
        if kind == "emb":
            sd[name] = torch.randn(shape) * 0.5
        elif kind == "linear":
            sd[name] = torch.randn(shape) / math.sqrt(shape[1])
        elif kind == "norm":
            sd[name] = 1 + 0.1 * torch.randn(shape)
        else:
            sd[name] = 1.0 / (10000 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    return sd


def wrap(sd, cfg):
    return {"model_state_dict": sd, **cfg}


def path(name):
    return os.path.join(FIX, name)


# ---------------------------------------------------------------- hash weights
HASH_DOC = """\
Weights of the full-size hash model (no file needed):
for a tensor with state-dict key N (e.g. "layers.3.attn.qkv.weight", no "module." prefix)
and flat row-major element index i (0-based, over the tensor's shape as in the spec table):
  fnv1a64(N): h = 0xcbf29ce484222325; for each byte b of N's UTF-8: h = (h ^ b) * 0x100000001b3 (wrapping u64)
  splitmix64(x): z = x + 0x9E3779B97F4A7C15; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
                 z = (z ^ (z >> 27)) * 0x94D049BB133111EB; return z ^ (z >> 31)   (all wrapping u64)
  u    = splitmix64(fnv1a64(N) + i)            (wrapping u64 add)
  unit = (u >> 11) as f64 / 2^53               (in [0,1), exact)
  t    = 2.0 * unit - 1.0                      (f64, exact)
  token_embedding.weight: v = 0.5 * t
  *.weight (linear, shape [out,in]): v = (1.7 / sqrt(in as f64)) * t     (scale computed first, f64)
  *.scale (rmsnorm gains): v = 1.0 + 0.1 * t   (0.1*t first, then add; f64)
  weight = v rounded to nearest f32 (Rust: `v as f32`).
inv_freq buffers are not generated (recompute them)."""

M64 = (1 << 64) - 1


def fnv1a64(name):
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def splitmix64_scalar(x):
    """Plain-int version, used to cross-check the vectorized one."""
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def splitmix64(x):
    """Vectorized on a uint64 array (numpy array arithmetic wraps modulo 2^64)."""
    U = np.uint64
    with np.errstate(over="ignore"):
        z = x + U(0x9E3779B97F4A7C15)
        z = (z ^ (z >> U(30))) * U(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> U(27))) * U(0x94D049BB133111EB)
        return z ^ (z >> U(31))


def hash_values(name, shape, kind):
    """float64 values (before f32 rounding) for the first prod(shape) indices."""
    n = int(np.prod(shape))
    with np.errstate(over="ignore"):
        u = splitmix64(np.arange(n, dtype=np.uint64) + np.uint64(fnv1a64(name)))
    t = 2.0 * ((u >> np.uint64(11)).astype(np.float64) / 2.0**53) - 1.0
    if kind == "emb":
        return 0.5 * t
    if kind == "linear":
        return (1.7 / math.sqrt(shape[1])) * t
    return 1.0 + 0.1 * t


def hash_value_scalar(name, i, shape, kind):
    u = splitmix64_scalar((fnv1a64(name) + i) & M64)
    t = 2.0 * ((u >> 11) / 2.0**53) - 1.0
    v = 0.5 * t if kind == "emb" else (1.7 / math.sqrt(shape[1])) * t if kind == "linear" else 1.0 + 0.1 * t
    return float(np.float32(v))


def hash_state(cfg):
    sd = {}
    for name, shape, kind in shapes(cfg):
        if kind != "inv_freq":
            sd[name] = torch.from_numpy(hash_values(name, shape, kind).astype(np.float32).reshape(shape))
    return sd


# ---------------------------------------------------------------- goldens
def probe(model, ids, positions, step):
    """Logits at sampled vocab ids, argmax and max |logit| at chosen positions."""
    with torch.no_grad():
        logits = model.forward(ids)
    vs = list(range(0, logits.shape[1], step))
    return {
        "ids": list(ids),
        "positions": positions,
        "vocab_sample": vs,
        "logits": [[float(logits[p, v]) for v in vs] for p in positions],
        "argmax": [int(logits[p].argmax()) for p in positions],
        "max_abs": [float(logits[p].abs().max()) for p in positions],
    }


def perplexity_golden(model, tokens):
    """The model's perplexity of `tokens` in windows of 32."""
    ppl, count, mean = model.perplexity(tokens, 32)
    return {"ctx": 32, "tokens": count, "value": ppl, "mean_nll": mean, "text_tokens": len(tokens)}


def tiny_golden(weights_file, dtype, tokens):
    sd, meta = load_state_dict(path(weights_file))
    model = ChayaRef(sd, meta["num_heads"])
    g = {"description": f"float64 reference (tests/reference/chaya_ref.py) of {weights_file} "
                        f"({dtype} weights upcast exactly); positions are 0-based from 0",
         "weights": weights_file, "dtype": dtype, "config": TINY}
    g.update(probe(model, tokens[:24], [0, 7, 23], 37))
    prompt = tokens[:8]
    g["greedy"] = {"prompt": prompt, "n": 24, "ctx": TINY["seq_len"],
                   "tokens": model.greedy(prompt, 24, TINY["seq_len"])}
    g["perplexity"] = perplexity_golden(model, tokens)
    return g


def tiny_int8_golden(tokens):
    """The tiny model under chaya's int8 numerics (int8_ref.py, mode q8_0)."""
    sd, meta = load_state_dict(path("tiny_wrapped.pt"))
    model = QuantRef(sd, meta["num_heads"], "q8_0")
    g = {"description": "float64 simulation (tests/reference/int8_ref.py, q8_0) of tiny_wrapped.pt "
                        "converted to int8; positions are 0-based from 0",
         "weights": "tiny_wrapped.pt", "dtype": "int8", "config": TINY}
    g.update(probe(model, tokens[:24], [0, 7, 23], 37))
    g["perplexity"] = perplexity_golden(model, tokens)
    d = divergences(ChayaRef(sd, meta["num_heads"]), {"int8": model}, tokens, 32)["int8"]
    g["divergence"] = {"ctx": 32, "from": "the float64 reference", "tokens": d.count,
                       "mean_kl": d.mean_kl(), "p99_kl": d.kl_quantile(0.99), "max_kl": d.kl_quantile(1.0),
                       "top1": d.top1()}
    return g


def dump(name, obj):
    with open(path(name), "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def stored_oddly(sd):
    """The same values as `sd` in the layouts torch.save keeps for views: every
    matrix a column slice of a wider tensor (non-contiguous), the embedding
    with transposed strides, the norms every other element of a longer vector,
    one matrix a Parameter with a Python attribute (saved with its state),
    every key behind torch.compile's `_orig_mod.` prefix."""
    out = {}
    for name, t in sd.items():
        if name == "token_embedding.weight":
            t = t.t().contiguous().t()
        elif t.dim() == 2:
            t = torch.cat([t, torch.zeros_like(t)], 1)[:, : t.shape[1]]
        elif name.endswith(".scale"):
            t = torch.stack([t, torch.zeros_like(t)], 1)[:, 0]
        if name == "layers.0.ffn.w1.weight":
            t = torch.nn.Parameter(t.clone(), requires_grad=False)
            t.no_weight_decay = True
        out["_orig_mod." + name] = t
    return out


def as_module(sd):
    """An nn.Module whose state_dict() is `sd` (inv_freq as buffers), plus a
    boolean and an integer buffer, as models keep masks and counters."""
    root = torch.nn.Module()
    for name, t in list(sd.items()) + [("layers.0.attn.mask", torch.ones(4, 4).bool()),
                                       ("layers.0.attn.steps", torch.tensor(7))]:
        *path, leaf = name.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        if t.is_floating_point() and "inv_freq" not in name:
            module.register_parameter(leaf, torch.nn.Parameter(t.clone()))
        else:
            module.register_buffer(leaf, t.clone())
    return root


def save_variants(msd):
    """Checkpoints real training scripts write (micro config, msd's weights)."""
    # A file stem of 21 bytes gives the first zip directory entry the length
    # of torch's zip64 end records, which fooled the zip reader's guess of
    # where the archive starts.
    torch.save(wrap(stored_oddly(msd), MICRO), path("micro_views_and_names.pt"))
    # (The legacy format names storages by object address: the one file here
    # whose bytes differ from run to run.)
    torch.save(wrap(msd, MICRO), path("micro_legacy.pt"), _use_new_zipfile_serialization=False)
    torch.save(wrap(msd, MICRO), path("micro_protocol4.pt"), pickle_protocol=4)
    hd = MICRO["d_model"] // MICRO["num_heads"]
    base = 1.0 / (500000 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    torch.save(wrap({k: base if "inv_freq" in k else v for k, v in msd.items()}, MICRO),
               path("micro_rope_base.pt"))
    torch.save({"state_dict": msd, "epoch": 3}, path("micro_nested.pt"))
    # What `torch.save(model.state_dict(), path)` writes: an OrderedDict
    # with `_metadata`, non-float buffers included.
    torch.save(as_module(msd).state_dict(), path("micro_module_state.pt"))
    # micro_ok.pt with the storage of its largest tensor cut in half: the
    # archive is whole, the tensor reads past its storage.
    with zipfile.ZipFile(path("micro_ok.pt")) as src, \
            zipfile.ZipFile(path("bad_short_storage.pt"), "w") as dst:
        largest = max((i for i in src.infolist() if "/data/" in i.filename),
                      key=lambda i: i.file_size)
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data[: len(data) // 2] if info is largest else data)


def main():
    os.makedirs(FIX, exist_ok=True)
    torch.set_num_threads(2)

    with open(path("text.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write(TEXT)
    tokens = encode(TEXT, TOKENIZER)

    # --- tiny model in every container format
    sd = random_state(TINY, 1234)
    torch.save(wrap(sd, TINY), path("tiny_wrapped.pt"))
    torch.save({"module." + k: v for k, v in sd.items() if "inv_freq" not in k},
               path("tiny_bare_module.pt"))
    torch.save(wrap({k: v.half() for k, v in sd.items()}, TINY), path("tiny_fp16.pt"))
    torch.save(wrap({k: v.bfloat16() for k, v in sd.items()}, TINY), path("tiny_bf16.pt"))
    save_file({k: v.contiguous() for k, v in sd.items()}, path("tiny_state.safetensors"))

    dump("tiny_golden.json", tiny_golden("tiny_wrapped.pt", "f32", tokens))
    dump("tiny_fp16_golden.json", tiny_golden("tiny_fp16.pt", "f16", tokens))
    dump("tiny_bf16_golden.json", tiny_golden("tiny_bf16.pt", "bf16", tokens))
    dump("tiny_int8_golden.json", tiny_int8_golden(tokens))

    # --- full-size model with hash-generated weights
    full_shapes = {n: (s, k) for n, s, k in shapes(FULL)}
    hsd = hash_state(FULL)
    probes = []
    for name, idx in [("token_embedding.weight", 0), ("token_embedding.weight", 12345),
                      ("emb_proj.weight", 7), ("layers.0.norm1.scale", 3),
                      ("layers.3.attn.qkv.weight", 1000003), ("layers.7.ffn.w3.weight", 1638399),
                      ("norm_f.scale", 639), ("out_proj.weight", 122879)]:
        v = float(hsd[name].reshape(-1)[idx])
        assert v == hash_value_scalar(name, idx, *full_shapes[name]), name  # cross-check
        probes.append({"name": name, "index": idx, "value": v,
                       "f32_bits": f"0x{np.float32(v).view(np.uint32):08x}"})
    model = ChayaRef({k: v.to(torch.float64) for k, v in hsd.items()}, FULL["num_heads"])
    g = {"description": "float64 reference of the full-size CHAYA-v1 shape with hash-generated "
                        "f32 weights; positions are 0-based from 0",
         "generator": HASH_DOC, "config": FULL, "weight_probe": probes}
    g.update(probe(model, tokens[:16], [0, 15], 101))
    dump("full_hash_golden.json", g)
    del model, hsd

    # --- bad inputs (micro config)
    msd = random_state(MICRO, 7)
    torch.save(wrap(msd, MICRO), path("micro_ok.pt"))
    torch.save(wrap({k: v for k, v in msd.items() if k != "layers.0.ffn.w2.weight"}, MICRO),
               path("bad_missing_key.pt"))
    torch.save(wrap({**msd, "layers.0.attn.bias": torch.zeros(8)}, MICRO), path("bad_unknown_key.pt"))
    torch.save(wrap({**msd, "emb_proj.weight": torch.randn(8, 5)}, MICRO), path("bad_shape.pt"))
    nan_w = msd["layers.0.attn.out.weight"].clone()
    nan_w[3, 5] = float("nan")
    torch.save(wrap({**msd, "layers.0.attn.out.weight": nan_w}, MICRO), path("bad_nan.pt"))
    with zipfile.ZipFile(path("not_a_checkpoint.pt"), "w") as z:
        z.writestr(zipfile.ZipInfo("notes/readme.txt", date_time=(2024, 1, 1, 0, 0, 0)),
                   "This is a zip archive, but not a PyTorch checkpoint.\n")
    with open(path("micro_ok.pt"), "rb") as f:
        data = f.read()
    with open(path("truncated.pt"), "wb") as f:
        f.write(data[: len(data) // 2])
    save_variants(msd)

    for name in sorted(os.listdir(FIX)):
        print(f"{os.path.getsize(path(name)):>9}  {name}")


if __name__ == "__main__":
    main()
