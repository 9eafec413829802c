#!/usr/bin/python3
"""PyTorch (Debian's python3-torch) training throughput of bt's model, for the
side-by-side in tools/bench-engine. Prints one JSON line per preset.

usage: bench_torch.py [--presets 200K,800K,3.2M] [--batch 8] [--ctx 2048] [--steps 1] [-T 2]
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from btref import adamw, forward, init_params  # noqa: E402

PRESETS = {"200K": (4, 64, 4), "800K": (4, 128, 4), "3.2M": (4, 256, 8)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="200K,800K,3.2M")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("-T", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.T)
    g = torch.Generator().manual_seed(0)
    for name in a.presets.split(","):
        L, C, H = PRESETS[name]
        P = init_params(L, C)
        for p in P.values():
            p.requires_grad_(True)
        opt = adamw(P, 1e-3, (0.9, 0.95), 1e-8, 0.1)
        seq = torch.randint(0, 256, (a.batch, a.ctx), generator=g)

        def step():
            opt.zero_grad()
            _, loss = forward(P, seq, L, C, H)
            loss.backward()
            opt.step()

        step()  # warm-up
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        dt = time.perf_counter() - t0
        print(json.dumps({"preset": name, "torch": torch.__version__, "threads": a.T,
                          "tokens_per_s_with_adam": a.steps * a.batch * a.ctx / dt}), flush=True)


if __name__ == "__main__":
    main()
