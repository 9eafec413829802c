"""btref - bt's byte transformer written in PyTorch, for cross-checks and
benchmarks. Same architecture and parameter names as train/model.h; weights
load from a bt checkpoint with h5py.
"""
import math

import h5py
import numpy as np
import torch
import torch.nn.functional as F

TENSORS = ["embed", "qkv_w", "attn_out_w", "ln1_w", "ln1_b", "fc_w", "fc_b",
           "proj_w", "proj_b", "ln2_w", "ln2_b", "out_w", "out_b"]
DECAY = {"qkv_w", "attn_out_w", "fc_w", "proj_w", "out_w"}


def shapes(L, C, V=256):
    return {"embed": (V, C), "qkv_w": (L, 3 * C, C), "attn_out_w": (L, C, C),
            "ln1_w": (L, C), "ln1_b": (L, C), "fc_w": (L, 4 * C, C), "fc_b": (L, 4 * C),
            "proj_w": (L, C, 4 * C), "proj_b": (L, C), "ln2_w": (L, C), "ln2_b": (L, C),
            "out_w": (V, C), "out_b": (V,)}


def init_params(L, C, dtype=torch.float32, seed=0, V=256):
    """Random parameters with bt's init scheme (not bit-identical to bt's)."""
    g = torch.Generator().manual_seed(seed)
    P = {}
    for n, s in shapes(L, C, V).items():
        if n in ("ln1_w", "ln2_w"):
            P[n] = torch.ones(s, dtype=dtype)
        elif n.endswith("_b"):
            P[n] = torch.zeros(s, dtype=dtype)
        else:
            std = 0.02 if n == "embed" else 1 / math.sqrt(s[-1])
            P[n] = (torch.randn(s, generator=g) * std).clamp(-2 * std, 2 * std).to(dtype)
    return P


def load_params(path, dtype=torch.float64):
    with h5py.File(path, "r") as f:
        cfg = {k: int(f.attrs[k]) for k in ("n_layer", "d_model", "n_head", "ctx", "vocab", "num_params")}
        P = {n: torch.tensor(np.array(f["params"][n]), dtype=dtype) for n in TENSORS}
    return cfg, P


def rope(x, T, hs):
    i = torch.arange(hs // 2, dtype=torch.float64)
    inv = 10000.0 ** (-2.0 * i / hs)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = torch.cos(ang).to(x.dtype), torch.sin(ang).to(x.dtype)
    x1, x2 = x[..., : hs // 2], x[..., hs // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def forward(P, seq, L, C, H):
    """Returns (logits (B,T,V), mean cross-entropy in nats) for tokens seq (B,T) int64;
    V is the output layer's size (256 for bytes)."""
    B, T = seq.shape
    hs = C // H
    inp = torch.cat([torch.zeros(B, 1, dtype=torch.long), seq[:, :-1]], dim=1)
    x = P["embed"][inp] * math.sqrt(C)
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(L):
        qkv = x @ P["qkv_w"][l].T
        q, k, v = qkv.split(C, dim=-1)
        q, k, v = (t.view(B, T, H, hs).transpose(1, 2) for t in (q, k, v))
        q, k = rope(q, T, hs), rope(k, T, hs)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        s = s.masked_fill(~mask, float("-inf"))
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        h = F.layer_norm(x + a @ P["attn_out_w"][l].T, (C,), P["ln1_w"][l], P["ln1_b"][l], 1e-5)
        f = F.gelu(h @ P["fc_w"][l].T + P["fc_b"][l], approximate="tanh")
        x = F.layer_norm(h + f @ P["proj_w"][l].T + P["proj_b"][l], (C,), P["ln2_w"][l],
                         P["ln2_b"][l], 1e-5)
    logits = x @ P["out_w"].T + P["out_b"]
    loss = F.cross_entropy(logits.reshape(-1, P["out_b"].numel()), seq.reshape(-1))
    return logits, loss


def adamw(P, lr, betas, eps, wd):
    decay = [P[n] for n in TENSORS if n in DECAY]
    rest = [P[n] for n in TENSORS if n not in DECAY]
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                              {"params": rest, "weight_decay": 0.0}],
                             lr=lr, betas=betas, eps=eps)
