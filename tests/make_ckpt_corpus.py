"""make_ckpt_corpus.py - writes the seed corpus of tests/fuzz_ckpt.c into
tests/corpus/ckpt from two tiny checkpoints made by bt-train and bt-ckpt:

  /usr/bin/python3 tests/make_ckpt_corpus.py BUILD

The golden files of later formats were made once each, by the build of
their version, and are never remade: ok-train-v2-wsd.h5, ok-train-v3-seq.h5,
ok-train-v4-bf16.h5, ok-train-v5-bpe.h5 (a BPE model of 300 tokens):
  bt-tokenize train --vocab 300 -o gtok-300 TEXT   (TEXT: the first 20,000 bytes of wiki-valid10m)
  bt-train --layers 1 --dim 16 --heads 2 --ctx 32 --batch 2 --steps 2 --log-every 1 \
    --val-split 0.1 -T 1 -q --tokenizer gtok-300.btok -o ok-train-v5-bpe.h5 TEXT
and ok-train-v6-cadence.h5 (the run's cadence recorded):
  bt-train --layers 1 --dim 16 --heads 2 --ctx 32 --batch 2 --steps 2 --log-every 1 --val-every 1 \
    --val-bytes 2000 --ckpt-every 1 --val-split 0.1 -T 1 -q -o ok-train-v6-cadence.h5 TEXT
and ok-train-v7-bwarm.h5 (stopped at step 2 of a batch warmup from 1 to 4 sequences over 4 steps):
  bt-train --layers 1 --dim 16 --heads 2 --ctx 32 --batch 4 --batch-warmup 4 --batch-min 1 --steps 2 \
    --log-every 1 --val-every 1 --val-bytes 2000 --ckpt-every 1 --val-split 0.1 -T 1 -q -o ok-train-v7-bwarm.h5 TEXT
and ok-train-v7-muon.h5 (a Muon run stopped at step 2 of 4):
  bt-train --layers 1 --dim 16 --heads 2 --ctx 32 --batch 2 --steps 4 --stop-at 2 --optimizer muon --log-every 1 \
    --val-every 1 --val-bytes 2000 --ckpt-every 1 --val-split 0.1 -T 1 -q -o ok-train-v7-muon.h5 TEXT

Names tell the replay what to expect (see fuzz_ckpt.c): ok-* load, bad-*
fail with the named error. The hostile ones are edited with h5py and
resealed, as an attacker would; test_ckpt_hostile.py holds the full list.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

BUILD = sys.argv[1]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import reseal  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "ckpt")


def main():
    os.makedirs(OUT, exist_ok=True)
    work = tempfile.mkdtemp()
    text = os.path.join(work, "text")
    with open(text, "wb") as f:
        f.write(bytes((i * 7 + (i >> 5)) % 251 for i in range(6000)))
    train = os.path.join(work, "train.h5")
    subprocess.run([os.path.join(BUILD, "bt-train"), "--layers", "1", "--dim", "16", "--heads", "2",
                    "--ctx", "32", "--batch", "2", "--steps", "2", "--ctx-warmup", "1", "--ctx-min", "16",
                    "--log-every", "1", "--val-split", "0.1", "-T", "1", "-q", "-o", train, text], check=True)
    f16 = os.path.join(work, "f16.h5")
    subprocess.run([os.path.join(BUILD, "bt-ckpt"), "export", "--f16", train, f16], check=True)
    shutil.copy(train, os.path.join(OUT, "ok-train.h5"))
    shutil.copy(f16, os.path.join(OUT, "ok-f16.h5"))

    def variant(src, name, edit):
        p = os.path.join(OUT, name)
        shutil.copy(src, p)
        with h5py.File(p, "r+") as f:
            edit(f)
        reseal(p)

    # Hostile training states (val_split 2, step 2^62, a 2^26-row log, ...)
    # are test_ckpt_hostile.py's: each such seed would weigh 180 KB here.
    def external(f):
        shape, dt = f["params/embed"].shape, f["params/embed"].dtype
        del f["params/embed"]
        f["params"].create_dataset("embed", shape=shape, dtype=dt, external=[("/dev/zero", 0, h5py.h5f.UNLIMITED)])
    variant(f16, "bad-format-external.h5", external)

    def gz(f):
        d = f["params/fc_w"][()]
        del f["params/fc_w"]
        f["params"].create_dataset("fc_w", data=d, compression="gzip", chunks=True)
    variant(f16, "bad-format-gzip.h5", gz)

    def soft(f):
        del f["params/out_b"]
        f["params/out_b"] = h5py.SoftLink("/params/ln1_b")
    variant(f16, "bad-format-softlink.h5", soft)

    def big(f):
        f.attrs["d_model"] = np.int64(4096)
        f.attrs["n_head"] = np.int64(32)
        f.attrs["n_layer"] = np.int64(4)
        f.attrs["num_params"] = np.int64(4 * (12 * 4096 * 4096 + 9 * 4096) + 512 * 4096 + 256)
    variant(f16, "bad-mismatch-claims-3GB.h5", big)

    def config(f):
        f.attrs["d_model"] = np.int64(17)
    variant(f16, "bad-format-dim17.h5", config)
    # damage without resealing: the user block's checksum catches it
    p = os.path.join(OUT, "bad-corrupt-flipped.h5")
    shutil.copy(f16, p)
    with open(p, "r+b") as fh:
        fh.seek(3000)
        b = fh.read(1)
        fh.seek(3000)
        fh.write(bytes([b[0] ^ 0x40]))
    shutil.rmtree(work)
    for n in sorted(os.listdir(OUT)):
        print(n, os.path.getsize(os.path.join(OUT, n)))


if __name__ == "__main__":
    main()
