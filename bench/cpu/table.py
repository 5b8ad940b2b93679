#!/usr/bin/env python3
"""Ratio table from bench/cpu/run.sh's results.jsonl: best tokens/s per side and shape.

  table.py RESULTS.jsonl [LAYERS]
"""
import json
import sys


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    layers = sys.argv[2] if len(sys.argv) > 2 else "?"
    rounds = max(r["round"] for r in rows)
    print(f"nemotron-1b width, {layers} layers, BF16 checkpoint; best of {rounds} rounds")
    print(f"{'batch x seq':>12} {'llamaembed tok/s':>17} {'torch f32 tok/s':>16} {'ratio':>6} "
          f"{'go p50 ms':>10} {'torch p50 ms':>13} {'go RSS MiB':>11} {'torch RSS MiB':>14}")
    ok = True
    g = t = None
    for shape in dict.fromkeys((r["batch"], r["seq"]) for r in rows):
        side = lambda impl: [r for r in rows if r["impl"] == impl and (r["batch"], r["seq"]) == shape]
        if not side("llamaembed") or not side("torch"):
            continue
        g = max(side("llamaembed"), key=lambda r: r["tokens_per_s"])
        t = max(side("torch"), key=lambda r: r["tokens_per_s"])
        ratio = g["tokens_per_s"] / t["tokens_per_s"]
        ok &= ratio >= 1.2
        print(f"{'%dx%d' % shape:>12} {g['tokens_per_s']:17.1f} {t['tokens_per_s']:16.1f} {ratio:6.2f} "
              f"{g['latency_p50_ms']:10.1f} {t['latency_p50_ms']:13.1f} {g['peak_rss_mib']:11.0f} {t['peak_rss_mib']:14.0f}")
    if g and t:
        print("llamaembed:", g["device"], "| torch BLAS:", ", ".join(t.get("blas", [])) or "?",
              "| OpenBLAS kernels:", t.get("openblas_core"))
    print("target (>= 1.2x at every shape):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
