#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/seeds/ (stdlib only).

model_file: micro CHAYA model files (vocabulary of 64 byte-level tokens, one
layer of width 8) stored as f32, f16 and int8 (and one with the tokenizer in
the metadata, as older files keep it), a few hundred bytes of tensors each,
so the fuzzer mutates headers and tables rather than megabytes of weights. tokenizer_decode / generate_options: a few byte strings.
"""
import json, os, random, struct

HERE = os.path.dirname(os.path.abspath(__file__))
random.seed(7)

CONFIG = dict(vocab_size=64, e_dim=4, d_model=8, n_layers=1, n_heads=2, ffn_dim=8,
              context_length=16, train_context=16, rope_base=10000.0, norm_eps=1e-8,
              eos_token_id=63)

def tokenizer_json():
    vocab = {chr(c): c - 33 for c in range(33, 96)}  # '!'..'_' are bytes 33..95
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 63, "content": "<|endoftext|>", "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": True,
                          "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                          "trim_offsets": True, "use_regex": True},
        "post_processor": None, "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": []},
    })

def shapes(c):
    d, f = c["d_model"], c["ffn_dim"]
    out = [("token_embedding.weight", [c["vocab_size"], c["e_dim"]]),
           ("emb_proj.weight", [d, c["e_dim"]])]
    for i in range(c["n_layers"]):
        out += [(f"layers.{i}.norm1.scale", [d]), (f"layers.{i}.attn.qkv.weight", [3 * d, d]),
                (f"layers.{i}.attn.out.weight", [d, d]), (f"layers.{i}.norm2.scale", [d]),
                (f"layers.{i}.ffn.w1.weight", [f, d]), (f"layers.{i}.ffn.w2.weight", [f, d]),
                (f"layers.{i}.ffn.w3.weight", [d, f])]
    return out + [("norm_f.scale", [d]), ("out_proj.weight", [c["e_dim"], d])]

def f16_bytes(values):
    return b"".join(struct.pack("<e", v) for v in values)

def tensors(dtype):
    out = {}
    for name, shape in shapes(CONFIG):
        n = 1
        for s in shape:
            n *= s
        values = [1.0] * n if len(shape) == 1 else [random.uniform(-0.5, 0.5) for _ in range(n)]
        if len(shape) == 1 or dtype == "F32":
            out[name] = ("F32", shape, struct.pack(f"<{n}f", *values))
        elif dtype == "F16":
            out[name] = ("F16", shape, f16_bytes(values))
        else:
            rows, cols = shape[0], n // shape[0]
            scales, q = [], []
            for r in range(rows):
                row = values[r * cols:(r + 1) * cols]
                scale = max(abs(v) for v in row) / 127 or 1.0
                scales.append(scale)
                q += [max(-127, min(127, round(v / scale))) for v in row]
            out[name] = ("I8", shape, struct.pack(f"<{n}b", *q))
            out[name + ".scale_q"] = ("F32", [rows], struct.pack(f"<{rows}f", *scales))
    return out

def safetensors(tensors, metadata):
    header, data = {"__metadata__": metadata}, b""
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data

def write(target, name, data):
    os.makedirs(os.path.join(HERE, "seeds", target), exist_ok=True)
    with open(os.path.join(HERE, "seeds", target, name), "wb") as f:
        f.write(data)

metadata = {"format": "chaya-v1", "config": json.dumps(CONFIG)}
text = tokenizer_json().encode()
tokenizer = {"tokenizer.json": ("U8", [len(text)], text)}
for dtype in ["F32", "F16", "I8"]:
    write("model_file", f"micro_{dtype.lower()}.safetensors",
          safetensors({**tensors(dtype), **tokenizer}, metadata))
write("model_file", "no_metadata.safetensors", safetensors(tensors("F32"), {}))

# Token ids as 3-byte little-endian chunks (the target's encoding).
def ids(values):
    return b"".join(struct.pack("<I", v)[:3] for v in values)
write("tokenizer_decode", "hello_world", ids([15496, 995]))
write("tokenizer_decode", "split_emoji", ids([8582, 248, 222, 220, 30266, 109]))
write("tokenizer_decode", "eos_and_bytes", ids([50256, 0, 255, 256]))

for i in range(4):
    write("generate_options", f"random_{i}", bytes(random.randrange(256) for _ in range(64 + 64 * i)))

# Files written before 2026-12-03 kept the tokenizer in the metadata.
write("model_file", "micro_f32_tokenizer_in_metadata.safetensors",
      safetensors(tensors("F32"), {**metadata, "tokenizer": tokenizer_json()}))
