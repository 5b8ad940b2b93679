#!/usr/bin/env python3
"""Batched float32 PyTorch baseline for `llamaembed bench` on the same checkpoint.

Plain torch (no transformers, which Debian lacks): reads the safetensors
itself, widens every weight to float32 and runs the Llama bidirectional
encoder (no causal mask, mean pooling over tokens, L2 normalisation).

  torch_bench.py bench MODEL_DIR --batch 2 --seq 128 --iters 5   -> one JSON line
  torch_bench.py embed MODEL_DIR < ids.jsonl > emb.jsonl          -> {"embedding": [...]} per {"ids": [...]}
"""
import argparse
import glob
import json
import math
import os
import resource
import struct
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}


def load_safetensors(model_dir):
    """All tensors of the checkpoint as float32, names without a "model." prefix."""
    tensors = {}
    for path in sorted(glob.glob(os.path.join(model_dir, "*.safetensors"))):
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
            data = f.read()
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            lo, hi = meta["data_offsets"]
            t = torch.frombuffer(bytearray(data[lo:hi]), dtype=DTYPES[meta["dtype"]])
            name = name[len("model."):] if name.startswith("model.") else name
            tensors[name] = t.reshape(meta["shape"]).float()
    return tensors


def rope_inv_freq(cfg, head_dim):
    base = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    rs = cfg.get("rope_scaling") or {}
    if (rs.get("rope_type") or rs.get("type")) == "llama3":
        factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        orig = rs["original_max_position_embeddings"]
        low_wl, high_wl = orig / low, orig / high
        wl = 2 * math.pi / inv
        smooth = (orig / wl - low) / (high - low)
        scaled = torch.where(wl > low_wl, inv / factor, inv)
        mid = (wl <= low_wl) & (wl >= high_wl)
        inv = torch.where(mid, (1 - smooth) * inv / factor + smooth * inv, scaled)
    return inv


class Encoder:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = cfg = json.load(f)
        self.w = load_safetensors(model_dir)
        self.hidden = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.kv = cfg.get("num_key_value_heads", self.heads)
        self.hd = cfg.get("head_dim") or self.hidden // self.heads
        self.eps = cfg.get("rms_norm_eps", 1e-5)
        self.layers = cfg["num_hidden_layers"]
        self.vocab = cfg["vocab_size"]
        self.inv_freq = rope_inv_freq(cfg, self.hd)

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, cos, sin):
        a, b = x[..., : self.hd // 2], x[..., self.hd // 2 :]
        return torch.cat((a * cos - b * sin, b * cos + a * sin), dim=-1)

    @torch.inference_mode()
    def forward(self, ids):
        B, L = ids.shape
        ang = torch.outer(torch.arange(L, dtype=torch.float64), self.inv_freq)
        cos, sin = ang.cos().float(), ang.sin().float()
        h = self.w["embed_tokens.weight"][ids]
        rep = self.heads // self.kv
        scale = 1.0 / math.sqrt(self.hd)
        for i in range(self.layers):
            p = f"layers.{i}."
            x = self.rms(h, self.w[p + "input_layernorm.weight"])
            q = F.linear(x, self.w[p + "self_attn.q_proj.weight"]).view(B, L, self.heads, self.hd).transpose(1, 2)
            k = F.linear(x, self.w[p + "self_attn.k_proj.weight"]).view(B, L, self.kv, self.hd).transpose(1, 2)
            v = F.linear(x, self.w[p + "self_attn.v_proj.weight"]).view(B, L, self.kv, self.hd).transpose(1, 2)
            q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
            att = torch.softmax((q @ k.transpose(-1, -2)) * scale, dim=-1)  # bidirectional: no mask
            o = (att @ v).transpose(1, 2).reshape(B, L, self.heads * self.hd)
            h = h + F.linear(o, self.w[p + "self_attn.o_proj.weight"])
            x = self.rms(h, self.w[p + "post_attention_layernorm.weight"])
            g = F.linear(x, self.w[p + "mlp.gate_proj.weight"])
            u = F.linear(x, self.w[p + "mlp.up_proj.weight"])
            h = h + F.linear(F.silu(g) * u, self.w[p + "mlp.down_proj.weight"])
        h = self.rms(h, self.w["norm.weight"])
        return F.normalize(h.mean(dim=1), dim=-1)


def blas_library():
    """Which BLAS the process mapped (torch's BLAS_INFO=generic resolves libblas.so.3)."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "blas" in os.path.basename(path):
                libs.add(os.path.realpath(path))
    return sorted(libs)


def openblas_core():
    """The kernel family OpenBLAS chose (or was told to use), if it is loaded."""
    import ctypes
    for path in blas_library():
        if "openblas" in os.path.basename(path):
            try:
                lib = ctypes.CDLL(path)
                lib.openblas_get_corename.restype = ctypes.c_char_p
                return lib.openblas_get_corename().decode()
            except (OSError, AttributeError):
                return None
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["bench", "embed"])
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    enc = Encoder(a.model)
    load_s = time.perf_counter() - t0

    if a.mode == "embed":
        for line in sys.stdin:
            ids = torch.tensor([json.loads(line)["ids"]], dtype=torch.long)
            print(json.dumps({"embedding": enc.forward(ids)[0].tolist()}))
        return

    g = torch.Generator().manual_seed(a.seed)
    ids = torch.randint(0, enc.vocab, (a.batch, a.seq), generator=g)
    for _ in range(a.warmup):
        enc.forward(ids)
    lat = []
    for _ in range(a.iters):
        t = time.perf_counter()
        enc.forward(ids)
        lat.append(time.perf_counter() - t)
    s = sorted(lat)
    mid = len(s) // 2
    p50 = s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
    print(json.dumps({
        "model": a.model, "device": "torch %s cpu float32" % torch.__version__,
        "batch": a.batch, "seq": a.seq, "iters": a.iters, "threads": torch.get_num_threads(),
        "tokens_per_s": a.batch * a.seq * a.iters / sum(lat),
        "latency_p50_ms": 1000 * p50, "latency_mean_ms": 1000 * sum(lat) / len(lat),
        "latency_min_ms": 1000 * s[0],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_s": load_s, "blas": blas_library(), "openblas_core": openblas_core(),
    }))


if __name__ == "__main__":
    main()
