#!/usr/bin/python3
"""Cross-check of bt's transformer against PyTorch (Debian's python3-torch).

bt writes a tiny model to HDF5 with its logits, loss, gradients and the losses
of five AdamW steps (tests/tool_xcheck_dump.c). This script loads the same
weights with h5py into a float64 PyTorch model of the same architecture and
compares:
  logits            max abs diff          <= 1e-4
  loss              relative diff         <= 1e-5
  each gradient     relative L2 diff      <= 1e-3
  5 AdamW steps     losses within         1e-4
It then perturbs one weight and checks that the logits comparison fails, which
proves the cross-check can fail.

usage: test_torch_xcheck.py BUILD_DIR SOURCE_DIR
"""
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

from checks import BUILD, SRC, Tally  # noqa: E402

sys.path.insert(0, os.path.join(SRC, "tools"))
from btref import TENSORS, adamw, forward, load_params  # noqa: E402

check = Tally("torch_xcheck")


def run_case(tool, L, C, H, T, B, seed, V=256):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([tool, d, str(L), str(C), str(H), str(T), str(B), str(seed), str(V)], check=True)
        cfg, P = load_params(os.path.join(d, "model.h5"))
        check(cfg["num_params"] == sum(p.numel() for p in P.values()), "num_params attribute matches the tensors")
        check(int(cfg["vocab"]) == V and P["embed"].shape[0] == V and P["out_b"].numel() == V,
              f"the checkpoint holds a vocabulary of {V}")
        seq = torch.tensor(np.fromfile(os.path.join(d, "seq.bin"), dtype="<u2").astype(np.int64)).view(B, T)
        check(int(seq.max()) < V and (V == 256 or int(seq.max()) >= 256), "the tokens span the vocabulary")
        bt_logits = torch.tensor(np.fromfile(os.path.join(d, "logits.bin"), dtype=np.float32)).view(B, T, V)
        bt_grads = np.fromfile(os.path.join(d, "grads.bin"), dtype=np.float32)
        bt_loss = float(open(os.path.join(d, "loss.txt")).read())
        bt_adam = [float(x) for x in open(os.path.join(d, "adam_losses.txt")).read().split()]

    name = f"L={L} C={C} H={H} T={T} B={B} V={V}"
    for p in P.values():
        p.requires_grad_(True)
    logits, loss = forward(P, seq, L, C, H)
    loss.backward()
    dl = (logits.detach() - bt_logits.double()).abs().max().item()
    check(dl <= 1e-4, f"{name}: logits max abs diff {dl:.3g} > 1e-4")
    rl = abs(loss.item() - bt_loss) / abs(loss.item())
    check(rl <= 1e-5, f"{name}: loss rel diff {rl:.3g} > 1e-5")
    off, worst = 0, 0.0
    for n in TENSORS:
        g = P[n].grad.numpy().ravel()
        b = bt_grads[off: off + g.size].astype(np.float64)
        off += g.size
        rel = np.linalg.norm(g - b) / max(np.linalg.norm(g), 1e-30)
        worst = max(worst, rel)
        check(rel <= 1e-3, f"{name}: grad {n} rel L2 diff {rel:.3g} > 1e-3")
    check(off == bt_grads.size, f"{name}: gradient block size {bt_grads.size} != {off}")

    # Five AdamW steps with bt's hyperparameters (tool_xcheck_dump.c).
    opt = adamw(P, 1e-2, (0.9, 0.95), 1e-8, 0.1)
    torch_adam = []
    for step in range(5):
        opt.step()
        opt.zero_grad()
        _, loss = forward(P, seq, L, C, H)
        torch_adam.append(loss.item())
        loss.backward()
    da = max(abs(a - b) for a, b in zip(torch_adam, bt_adam))
    check(len(bt_adam) == 5 and da <= 1e-4, f"{name}: AdamW losses differ by {da:.3g}: {bt_adam} vs {torch_adam}")
    print(f"{name}: logits {dl:.2e}  loss {rl:.2e}  worst grad {worst:.2e}  adam {da:.2e}")

    # Negative control: a perturbed weight must make the logits check fail.
    with torch.no_grad():
        P["fc_w"][0][0, 0] += 1e-2
        logits2, _ = forward(P, seq, L, C, H)
    dl2 = (logits2 - bt_logits.double()).abs().max().item()
    check(dl2 > 1e-4, f"{name}: perturbed weight went unnoticed (diff {dl2:.3g})")


def main():
    tool = os.path.join(BUILD, "tool_xcheck_dump")
    torch.manual_seed(0)
    run_case(tool, 2, 32, 2, 33, 3, 1)    # hs 16, T not a multiple of any block
    run_case(tool, 4, 64, 4, 128, 2, 2)   # the 200K preset's widths
    run_case(tool, 1, 64, 2, 70, 1, 3)    # hs 32
    run_case(tool, 2, 64, 4, 96, 2, 4, V=1000)  # a 1K BPE vocabulary (V not a multiple of 16)
    return check.report()


if __name__ == "__main__":
    sys.exit(main())
