#!/usr/bin/env python3
"""test_eval_baselines.py BUILD SRC - bt-eval's gzip, LZMA2 and bzip2 rates,
chunked (with the paper's header correction) and whole, against Python's own
zlib, lzma and bz2 on the same bytes: they must agree within 0.05 percentage
points. The chunked PNG rate is held to the reference's own PNG compressor
(PIL, optimize=True, the chunk as a 32x64 grayscale image) likewise. The evaluated bytes are rebuilt here from bt-eval's documented chunk
selection (chunk i_j = floor(j * n / k)), on real text (a slice of
wiki-valid10m) and on random bytes, at the paper's 2048 and at another --chunk.
"""
import bz2
import csv
import io
import lzma
import math
import os
import subprocess
import sys
import tempfile
import zlib

from checks import BUILD, DATA, Tally  # noqa: E402

TOL = 0.0005  # 0.05 percentage points, as a fraction
COLUMNS = ["compressor", "chunk", "dataset", "raw_bytes", "compressed_bytes", "raw_rate", "adjusted_rate"]
check = Tally("test_eval_baselines")


def gzip9(b):
    c = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip wrapper
    return len(c.compress(b) + c.flush())


def png_pil(b):
    """The reference's png.compress: closest factors, 8-bit gray, optimize=True."""
    from PIL import Image
    a = round(math.sqrt(len(b)))
    while len(b) % a:
        a -= 1
    out = io.BytesIO()
    Image.frombytes("L", (a, len(b) // a), b).save(out, format="PNG", optimize=True)
    return len(out.getvalue())


PYTHON = {"gzip": gzip9, "lzma2": lambda b: len(lzma.compress(b)), "bzip2": lambda b: len(bz2.compress(b, 9))}


def selected(data, chunk, max_bytes):
    n = len(data) // chunk
    k = min(n, max(1, max_bytes // chunk)) if max_bytes else n
    return [data[(j * n // k) * chunk:(j * n // k + 1) * chunk] for j in range(k)]


def expected(name, chunks):
    f = PYTHON[name]
    raw = sum(len(c) for c in chunks)
    chunked = sum(f(c) for c in chunks) - f(b"\x00") * (len(chunks) - 1)
    return raw, chunked / raw, f(b"".join(chunks)) / raw


def run_eval(tmp, sets, chunk, max_bytes, sources):
    out = os.path.join(tmp, "rows.csv")
    cmd = [os.path.join(BUILD, "bt-eval"), "--compressors", ",".join(PYTHON) + ",png", "--datasets", ",".join(sets),
           "--chunk", str(chunk), "--max-bytes", str(max_bytes), "--csv", out, "-q"]
    for s, src in sources.items():
        cmd += ["--source", f"{s}={src}"]
    p = subprocess.run(cmd, capture_output=True)
    check(p.returncode == 0, f"bt-eval exit {p.returncode}: {p.stderr.decode(errors='replace')}")
    if p.returncode:
        return {}, ""
    with open(out, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        check(header == COLUMNS, f"CSV header {header}")
        rows = {(x[0], x[1], x[2]): x for x in r}
    return rows, p.stdout.decode()


def main():
    with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
        os.environ["BT_CACHE"] = os.path.join(tmp, "cache")
        with lzma.open(os.path.join(DATA, "text", "wiki-valid10m.txt.xz")) as f:
            text = f.read(1_000_000)
        text_path = os.path.join(tmp, "text.bin")
        with open(text_path, "wb") as f:
            f.write(text)
        rnd_path = os.path.join(tmp, "random.bin")
        p = subprocess.run([os.path.join(BUILD, "bt-prepare"), "-o", rnd_path, "random", "5"], capture_output=True)
        check(p.returncode == 0, f"bt-prepare random: {p.stderr!r}")
        with open(rnd_path, "rb") as f:
            rnd = f.read()

        for chunk, max_bytes in ((2048, 131072), (700, 50000)):
            rows, md = run_eval(tmp, ["text"], chunk, max_bytes, {"text": text_path})
            for name in PYTHON:
                raw, want_chunked, want_whole = expected(name, selected(text, chunk, max_bytes))
                for label, want in ((str(chunk), want_chunked), ("inf", want_whole)):
                    row = rows.get((name, label, "text"))
                    check(row is not None, f"no row {name},{label},text")
                    if row:
                        got = float(row[5])
                        check(int(row[3]) == raw, f"{name} {label}: raw_bytes {row[3]}, expected {raw}")
                        check(abs(got - want) <= TOL, f"{name} {label} text: {got:.6f}, Python {want:.6f}")
                        check(row[6] == row[5], f"{name}: adjusted rate must equal the raw rate")
            check("| text |" in md and "| lzma2 |" in md, "markdown table missing")
            if chunk == 2048:
                chunks = selected(text, chunk, max_bytes)
                want = (sum(png_pil(c) for c in chunks) - png_pil(b"\x00") * (len(chunks) - 1)) / (chunk * len(chunks))
                row = rows.get(("png", "2048", "text"))
                check(row is not None and abs(float(row[5]) - want) <= TOL,
                      f"png 2048 text: {row and row[5]}, PIL {want:.6f}")
                print(f"png 2048 text: bt-eval {row and row[5]}, PIL {want:.6f}")

        # the random set (seed 5), the same bytes bt-prepare wrote
        rows, _ = run_eval(tmp, ["random"], 2048, 65536, {"random": "5"})
        for name in PYTHON:
            raw, want_chunked, want_whole = expected(name, selected(rnd, 2048, 65536))
            for label, want in (("2048", want_chunked), ("inf", want_whole)):
                row = rows.get((name, label, "random"))
                check(row is not None and abs(float(row[5]) - want) <= TOL,
                      f"{name} {label} random bytes: {row and row[5]}, Python {want:.6f}")
    return check.report()


if __name__ == "__main__":
    sys.exit(main())
