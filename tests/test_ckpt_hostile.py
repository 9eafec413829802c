"""test_ckpt_hostile.py - checkpoints made by an attacker. The file checksum
protects against damage only: anyone can edit a checkpoint with h5py and
reseal it. Each case below is such a file; bt-train --resume and
bt-compress --ckpt must exit 1 with one clear line, without a crash, without
hanging and without allocating what the file claims.

Run by ctest as: test_ckpt_hostile.py BUILD SRC
"""
import os
import shutil
import subprocess
import sys
import tempfile
import threading

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import BUILD, UB, Tally, reseal  # noqa: E402

check = Tally("test_ckpt_hostile")
TRAIN = os.path.join(BUILD, "bt-train")
COMPRESS = os.path.join(BUILD, "bt-compress")
# Resident memory a refusal may cost (the sanitizer build's runtime included).
RSS_LIMIT_MB = 600


def run(cmd, timeout=60):
    """Runs cmd; returns (exit code or None on a timeout, stderr, peak RSS of
    that child in MB, from its own rusage)."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        fired = []
        timer = threading.Timer(timeout, lambda: (fired.append(1), p.kill()))
        timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        timer.cancel()
        p.returncode = 0  # reaped here; keep Popen from waiting again
        err.seek(0)
        text = err.read().decode(errors="replace")
    if fired:
        return None, "timed out: " + text, ru.ru_maxrss / 1024
    rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    return rc, text, ru.ru_maxrss / 1024


def refused(desc, cmd, pattern=None, timeout=60):
    rc, err, rss = run(cmd, timeout)
    lines = [l for l in err.splitlines() if l.strip()]
    check(rc == 1, f"{desc}: exit {rc}, expected 1; stderr: {err[:500]}")
    check(len(lines) >= 1 and "Sanitizer" not in err and "runtime error" not in err,
          f"{desc}: not a clean refusal: {err[:500]}")
    if pattern:
        import re
        check(lines and re.search(pattern, lines[0]) is not None,
              f"{desc}: first line {lines[:1]} does not match /{pattern}/")
    check(rss < RSS_LIMIT_MB, f"{desc}: peak RSS {rss:.0f} MB >= {RSS_LIMIT_MB} MB")


def main():
    work = tempfile.mkdtemp(dir=BUILD, prefix="testwork.")
    try:
        text = os.path.join(work, "text")
        with open(text, "wb") as f:
            f.write(bytes((i * 7 + (i >> 5)) % 251 for i in range(20000)))
        base = os.path.join(work, "base.h5")
        r = subprocess.run([TRAIN, "--recipe", "v1", "--layers", "1", "--dim", "16", "--heads", "2", "--ctx", "64",
                            "--batch", "2", "--steps", "3", "--ctx-warmup", "2", "--ctx-min", "16",
                            "--val-split", "0.1", "-T", "1", "-q", "-o", base, text],
                           stderr=subprocess.PIPE)
        check(r.returncode == 0, f"training the base model: {r.stderr.decode()[:300]}")
        if r.returncode:
            return check.report()
        out = os.path.join(work, "out.h5")
        resume = lambda p: [TRAIN, "--resume", p, "--steps", "6", "-o", out, "-q", "-T", "1", text]  # noqa: E731
        load = lambda p: [COMPRESS, "--ckpt", p, "-c", text]  # noqa: E731
        rc, err, _ = run(resume(base))
        check(rc == 0, f"the unmodified checkpoint must resume: {err[:300]}")

        n = [0]

        def variant(edit, src=base):
            """A copy of the base checkpoint (or src), edited with h5py and resealed."""
            n[0] += 1
            p = os.path.join(work, f"v{n[0]}.h5")
            shutil.copy(src, p)
            with h5py.File(p, "r+") as f:
                edit(f)
            reseal(p)
            return p

        def set_attr(group, name, value):
            return lambda f: f[group].attrs.__setitem__(name, value)

        # ---- training state out of range ----
        cases = [
            ("val_split 2.0", set_attr("train", "val_split", 2.0)),
            ("val_split NaN", set_attr("train", "val_split", float("nan"))),
            ("step 2^62 with context warmup", set_attr("train", "step", np.int64(1) << 62)),
            ("ctx_warmup_steps 2^62", set_attr("train", "ctx_warmup_steps", np.int64(1) << 62)),
            ("ctx_min not dividing seq", set_attr("train", "ctx_min", np.int64(24))),
            ("batch 2^20", set_attr("train", "batch", np.int64(1) << 20)),
            ("batch 65536 x seq 65536", lambda f: (f["train"].attrs.__setitem__("batch", np.int64(65536)),
                                                   f["train"].attrs.__setitem__("seq", np.int64(65536)))),
            ("seq beyond the context", set_attr("train", "seq", np.int64(128))),
            ("tokens 2^62", set_attr("train", "tokens", np.int64(1) << 62)),
            ("total_steps 2^62", set_attr("train", "total_steps", np.int64(1) << 62)),
            ("negative warmup", set_attr("train", "warmup_steps", np.int64(-5))),
            ("lr infinite", set_attr("train", "lr", float("inf"))),
            ("beta2 1.0", set_attr("train", "beta2", 1.0)),
            ("bad data hash", set_attr("train", "data_sha256", np.bytes_(b"zz" * 32))),
            ("checkpoint every 0 steps, with a cadence", set_attr("train", "ckpt_every", np.int64(0))),
            ("log every 2^40 steps", set_attr("train", "log_every", np.int64(1) << 40)),
            ("validation of -1 bytes", set_attr("train", "val_bytes", np.int64(-1))),
            ("batch_min not dividing the batch", set_attr("train", "batch_min", np.int64(3))),
            ("batch_min 2^40", set_attr("train", "batch_min", np.int64(1) << 40)),
            ("batch_warmup_steps 2^62", set_attr("train", "batch_warmup_steps", np.int64(1) << 62)),
        ]
        for desc, edit in cases:
            refused(desc, resume(variant(edit)), "cannot resume")

        # ---- storage: declared but not in the file, external, filtered, linked ----
        def huge_log(f):
            del f["train/log"]
            f["train"].create_dataset("log", shape=(1 << 26, 7), maxshape=(None, 7), chunks=(256, 7),
                                      dtype="f8")
        refused("a 2^26-row /train/log with no data", resume(variant(huge_log)), "cannot resume")

        def log_rows_beyond_steps(f):
            del f["train/log"]
            f["train"].create_dataset("log", data=np.zeros((1000, 7)), maxshape=(None, 7), chunks=(256, 7))
        refused("more log rows than steps", resume(variant(log_rows_beyond_steps)), "cannot resume")

        def external_zero(f):
            shape, dt = f["params/embed"].shape, f["params/embed"].dtype
            del f["params/embed"]
            f["params"].create_dataset("embed", shape=shape, dtype=dt,
                                       external=[("/dev/zero", 0, h5py.h5f.UNLIMITED)])
        refused("a tensor stored in /dev/zero", load(variant(external_zero)), "external")

        def external_link(f):
            del f["params/embed"]
            f["params/embed"] = h5py.ExternalLink(base, "/params/embed")
        refused("an external link", load(variant(external_link)), "link")

        def soft_link(f):
            del f["params/out_b"]
            f["params/out_b"] = h5py.SoftLink("/params/ln1_b")
        refused("a soft link", load(variant(soft_link)), "link")

        def gzip_tensor(f):
            data = f["params/embed"][()]
            del f["params/embed"]
            f["params"].create_dataset("embed", data=data, compression="gzip", chunks=True)
        refused("a gzip-filtered tensor", load(variant(gzip_tensor)), "filtered")

        def unallocated(f):
            shape, dt = f["params/fc_w"].shape, f["params/fc_w"].dtype
            del f["params/fc_w"]
            f["params"].create_dataset("fc_w", shape=shape, dtype=dt)  # never written: no storage
        refused("a tensor with no storage", load(variant(unallocated)), "storage")

        # ---- a small file that claims a huge model ----
        big = os.path.join(work, "big.h5")
        with h5py.File(big, "w", userblock_size=UB) as f:
            for k, v in [("n_layer", 64), ("d_model", 4096), ("n_head", 32), ("ctx", 2048), ("vocab", 256),
                         ("format_version", 1)]:
                f.attrs[k] = np.int64(v)
            f.attrs["format"] = np.bytes_(b"bt-checkpoint")
            f.attrs["num_params"] = np.int64(64 * (12 * 4096 * 4096 + 9 * 4096) + 512 * 4096 + 256)
            g = f.create_group("params")
            for name in ["embed", "qkv_w"]:
                g.create_dataset(name, shape=(4,), dtype="f4")
        with open(big, "r+b") as fh:
            fh.write(b"BTCKPT1\n")
        reseal(big)
        check(os.path.getsize(big) < 16384, f"the huge-model file is small ({os.path.getsize(big)} bytes)")
        refused("a small file claiming a 64-layer, dim-4096 model", load(big), "cannot load checkpoint")

        def claims(L, C):  # consistent attributes, the tensors still tiny
            def edit(f):
                f.attrs["d_model"] = np.int64(C)
                f.attrs["n_head"] = np.int64(C // 128)
                f.attrs["n_layer"] = np.int64(L)
                f.attrs["num_params"] = np.int64(L * (12 * C * C + 9 * C) + 512 * C + 256)
            return edit
        for L, C in [(4, 4096), (64, 4096)]:
            p = variant(claims(L, C))
            what = f"a resealed small checkpoint claiming {L} layers of dim {C}"
            refused(what, load(p), "cannot load checkpoint")
            refused(what + ", resumed", resume(p), "cannot resume")

        # ---- a BPE model's tokenizer (/tokenizer, format 5) ----
        TOKENIZE = os.path.join(BUILD, "bt-tokenize")
        x, ws = 1, []
        for _ in range(8000):  # words of a 10-letter alphabet: merges to spare for 320 tokens
            x = (x * 1103515245 + 12345) % (1 << 31)
            ws.append(bytes(97 + (x >> s) % 10 for s in range(8, 8 + 3 * (2 + (x >> 28) % 4), 3)))
        words = b" ".join(ws)
        wtext = os.path.join(work, "words")
        with open(wtext, "wb") as f:
            f.write(words)
        for v in (300, 320):
            subprocess.run([TOKENIZE, "train", "--vocab", str(v), "-o", os.path.join(work, f"tok-{v}"), wtext],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bpe = os.path.join(work, "bpe.h5")
        r = subprocess.run([TRAIN, "--recipe", "v1", "--layers", "1", "--dim", "16", "--heads", "2", "--ctx", "32", "--batch", "2",
                            "--steps", "2", "--val-split", "0.1", "-T", "1", "-q", "--tokenizer",
                            os.path.join(work, "tok-300.btok"), "-o", bpe, wtext], stderr=subprocess.PIPE)
        check(r.returncode == 0, f"training the BPE model: {r.stderr.decode()[:300]}")
        bresume = lambda p: [TRAIN, "--resume", p, "--steps", "4", "-o", out, "-q", "-T", "1", wtext]  # noqa: E731
        rc, err, _ = run(bresume(bpe))
        check(rc == 0, f"the unmodified BPE checkpoint must resume: {err[:300]}")
        other = open(os.path.join(work, "tok-320.btok"), "rb").read()

        def replace_tok(data):
            def edit(f):
                del f["tokenizer"]
                f.create_dataset("tokenizer", data=data)
            return edit

        def flip(f):
            d = f["tokenizer"][()]
            d[40] ^= 1
            del f["tokenizer"]
            f.create_dataset("tokenizer", data=d)
        for desc, edit, pat in [
                ("no /tokenizer", lambda f: f.__delitem__("tokenizer"), "without its tokenizer: missing /tokenizer"),
                ("another vocabulary's tokenizer", replace_tok(np.frombuffer(other, np.uint8)), "320 tokens"),
                ("a tokenizer of flipped bits", flip, "tokenizer"),
                ("a tokenizer of floats", replace_tok(np.zeros(404, np.float32)), "dataset of bytes"),
                ("a 2-D tokenizer", replace_tok(np.zeros((2, 202), np.uint8)), "dataset of bytes"),
                ("a tokenizer of 1 MB", replace_tok(np.zeros(1 << 20, np.uint8)), "too many"),
                ("vocab 300 in a format-4 file", set_attr("/", "format_version", np.int64(4)), "unsupported config"),
                ("vocab 70000", set_attr("/", "vocab", np.int64(70000)), "unsupported config")]:
            refused(desc, bresume(variant(edit, bpe)), pat)
        refused("a byte model's file with vocab 300", resume(variant(set_attr("/", "vocab", np.int64(300)))),
                "cannot resume")

        # ---- the error detail is not garbled (it used to be formatted from itself) ----
        p = variant(set_attr("/", "d_model", np.int64(17)))
        rc, err, _ = run(load(p))
        check(rc == 1 and "multiple of 16" in err and err.count(p) == 2 and "\ufffd" not in err,
              f"config error detail: {err.strip()}")

        # ---- a resealed file on which libhdf5 1.10 reads freed memory (found
        # by tests/fuzz_ckpt.c); bt's own reader (train/h5r.c) refuses it ----
        uaf = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "ckpt",
                           "bad-corrupt-hdf5-use-after-free.h5")
        refused("a file that makes libhdf5 read freed memory", load(uaf), "cannot load checkpoint")
        refused("... resumed", resume(uaf), "cannot resume")

        # ---- a FIFO as the checkpoint: refused at once, not a hang ----
        fifo = os.path.join(work, "fifo.h5")
        os.mkfifo(fifo)
        refused("a FIFO as --ckpt", load(fifo), "regular file", timeout=20)
        refused("a FIFO as --resume", resume(fifo), "regular file", timeout=20)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return check.report()


if __name__ == "__main__":
    sys.exit(main())
