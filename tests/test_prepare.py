#!/usr/bin/env python3
"""test_prepare.py BUILD SRC - bt-prepare's four data sets against an
independent Python implementation of the paper's conversions (PIL + numpy for
images, the wave module and a hand-written verbatim FLAC for audio, SplitMix64
for random bytes): the SHA-256 of bt-prepare's output must equal the one
computed here on the same small fixed inputs. Also: sorted path order across
subfolders, the cache (written, then read back), and damaged or unsupported
files failing with exit status 1.
"""
import hashlib
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import wave

import numpy as np
from PIL import Image

from checks import BUILD, DATA, Tally  # noqa: E402

PREPARE = os.path.join(BUILD, "bt-prepare")
CHUNK = 2048
check = Tally("test_prepare")


def run(*args, env=None):
    return subprocess.run([PREPARE, *args], capture_output=True, env=env)


def prepared(set_name, source, tmp, *extra, env=None):
    """bt-prepare's bytes for a set (None if it failed) and its report."""
    out = os.path.join(tmp, "out.bin")
    if os.path.exists(out):
        os.remove(out)
    p = run(*extra, "-o", out, set_name, source, env=env)
    if p.returncode != 0:
        print(p.stderr.decode(errors="replace"), file=sys.stderr)
        return None, p.stdout.decode()
    with open(out, "rb") as f:
        return f.read(), p.stdout.decode()


def sorted_files(root, exts):
    """Relative paths under root with one of exts, in byte-wise order."""
    found = []
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if not x.startswith(".")]
        for name in files:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in exts:
                found.append(os.path.relpath(os.path.join(d, name), root))
    return sorted(found, key=os.fsencode)


# ---------------------------------------------------------------- images

def image_stream(root):
    out = bytearray()
    for rel in sorted_files(root, {".jpg", ".jpeg", ".jpe", ".png"}):
        rgb = np.asarray(Image.open(os.path.join(root, rel)).convert("RGB"))
        gray = np.mean(rgb, axis=-1).astype(np.uint8)  # the reference's conversion
        h, w = gray.shape
        for r in range(h // 32):
            for c in range(w // 64):
                out += gray[r * 32:(r + 1) * 32, c * 64:(c + 1) * 64].tobytes()
    return bytes(out)


def test_images(tmp):
    root = os.path.join(tmp, "img")
    os.makedirs(os.path.join(root, "sub"))
    os.makedirs(os.path.join(root, ".hidden"))
    imagenet = os.path.join(DATA, "images", "imagenet")
    # two colour photographs and one grayscale JPEG from the real set
    for name in ["n01440764_tench.JPEG", "n01443537_goldfish.JPEG", "n02096051_Airedale.JPEG"]:
        shutil.copy(os.path.join(imagenet, name), os.path.join(root, "sub" if "gold" in name else "", name))
    rng = np.random.default_rng(7)
    smooth = np.cumsum(rng.integers(-3, 4, size=(131, 200, 3)), axis=1) % 256
    Image.fromarray(smooth.astype(np.uint8), "RGB").save(os.path.join(root, "rgb.png"))
    rgba = np.concatenate([smooth, rng.integers(0, 256, size=(131, 200, 1))], axis=2).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(os.path.join(root, "sub-rgba.PNG"))
    Image.fromarray(smooth[:, :, 0].astype(np.uint8), "L").save(os.path.join(root, "sub", "gray.png"))
    Image.fromarray(smooth.astype(np.uint8), "RGB").convert("P").save(os.path.join(root, "palette.png"))
    Image.fromarray(smooth[:40, :70].astype(np.uint8), "RGB").save(os.path.join(root, "tiny.jpg"), quality=90)
    Image.fromarray(smooth[:20, :20].astype(np.uint8), "RGB").save(os.path.join(root, "small.png"))  # no patch
    Image.fromarray(smooth.astype(np.uint8), "RGB").save(os.path.join(root, ".hidden", "skip.png"))
    with open(os.path.join(root, "notes.txt"), "w") as f:
        f.write("not an image\n")

    want = image_stream(root)
    got, report = prepared("image", root, tmp, "--no-cache")
    check(got is not None and len(got) == len(want) and len(want) % CHUNK == 0,
          f"image: {None if got is None else len(got)} bytes, expected {len(want)}")
    check(got is not None and hashlib.sha256(got).hexdigest() == hashlib.sha256(want).hexdigest(),
          "image: sha256 differs from PIL/numpy's")
    check(hashlib.sha256(want).hexdigest() in report, f"image: report does not print the sha256: {report}")
    check("9 files" in report, f"image: expected 9 files in the report: {report}")

    # the cache: the first run writes it, the second reads it back, same bytes
    env = dict(os.environ, BT_CACHE=os.path.join(tmp, "cache"))
    a, r1 = prepared("image", root, tmp, env=env)
    b, r2 = prepared("image", root, tmp, env=env)
    check("cache" not in r1 and "read from the cache" in r2, f"image cache not used: {r1!r} {r2!r}")
    check(a == want and b == want, "image: cached bytes differ")
    # a changed folder must not be served from the old cache entry
    os.remove(os.path.join(root, "rgb.png"))
    c, r3 = prepared("image", root, tmp, env=env)
    check("read from the cache" not in r3 and c == image_stream(root), "image: stale cache entry used")

    # failures: CMYK JPEG, damaged file, empty folder
    bad = os.path.join(tmp, "bad")
    os.makedirs(bad)
    Image.new("CMYK", (64, 32), (10, 20, 30, 40)).save(os.path.join(bad, "cmyk.jpg"))
    p = run("--no-cache", "image", bad)
    check(p.returncode == 1 and b"CMYK" in p.stderr, f"CMYK JPEG: rc {p.returncode} {p.stderr!r}")
    os.remove(os.path.join(bad, "cmyk.jpg"))
    with open(os.path.join(imagenet, "n01440764_tench.JPEG"), "rb") as f:
        jpg = f.read()
    with open(os.path.join(bad, "cut.jpg"), "wb") as f:
        f.write(jpg[:2000])
    p = run("--no-cache", "image", bad)
    check(p.returncode == 1 and b"cut.jpg" in p.stderr, f"truncated JPEG: rc {p.returncode} {p.stderr!r}")
    os.remove(os.path.join(bad, "cut.jpg"))
    p = run("--no-cache", "image", bad)
    check(p.returncode == 1 and b"no JPEG or PNG" in p.stderr, f"empty folder: rc {p.returncode} {p.stderr!r}")


# ---------------------------------------------------------------- audio

def crc8(data):
    c = 0
    for byte in data:
        c ^= byte
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
    return c


def crc16(data):
    c = 0
    for byte in data:
        c ^= byte << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x8005) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
    return c


def utf8_number(v):
    """FLAC's frame number coding (UTF-8 extended to 36 bits)."""
    if v < 0x80:
        return bytes([v])
    for n, lead in ((2, 0xC0), (3, 0xE0), (4, 0xF0), (5, 0xF8), (6, 0xFC)):
        if v < 1 << (5 * n + 1):
            out = [0x80 | ((v >> (6 * i)) & 0x3F) for i in range(n - 1)][::-1]
            return bytes([lead | (v >> (6 * (n - 1)))] + out)
    raise ValueError(v)


class Bits:
    def __init__(self):
        self.acc, self.n, self.out = 0, 0, bytearray()

    def put(self, value, bits):
        self.acc = (self.acc << bits) | (value & ((1 << bits) - 1))
        self.n += bits
        while self.n >= 8:
            self.n -= 8
            self.out.append((self.acc >> self.n) & 0xFF)
        self.acc &= (1 << self.n) - 1

    def align(self):
        if self.n:
            self.put(0, 8 - self.n)


def flac_verbatim(samples, rate=16000, block=4096):
    """A valid FLAC file of 16-bit mono samples in VERBATIM subframes."""
    md5 = hashlib.md5(np.asarray(samples, dtype="<i2").tobytes()).digest()
    info = Bits()
    info.put(block, 16), info.put(block, 16), info.put(0, 24), info.put(0, 24)
    info.put(rate, 20), info.put(0, 3), info.put(15, 5), info.put(len(samples), 36)
    out = bytearray(b"fLaC") + bytes([0x80, 0, 0, 34]) + info.out + md5
    for i, start in enumerate(range(0, len(samples), block)):
        part = samples[start:start + block]
        head = bytearray([0xFF, 0xF8, 0x70, 0x08])  # fixed blocks; 16-bit size follows; rate from STREAMINFO; mono, 16 bits
        head += utf8_number(i) + struct.pack(">H", len(part) - 1)
        head.append(crc8(head))
        body = Bits()
        body.put(0b00000010, 8)  # VERBATIM, no wasted bits
        for s in part:
            body.put(int(s), 16)
        body.align()
        frame = head + body.out
        out += frame + struct.pack(">H", crc16(frame))
    return bytes(out)


def high_u8(samples16):
    return ((np.asarray(samples16, dtype=np.int16).astype(np.int32) >> 8) + 128).astype(np.uint8).tobytes()


def test_audio(tmp):
    root = os.path.join(tmp, "aud")
    os.makedirs(os.path.join(root, "a"))
    rng = np.random.default_rng(11)
    voice = lambda n: np.clip(np.cumsum(rng.integers(-900, 901, size=n)), -32768, 32767).astype(np.int16)
    files = {}  # relative path -> the 8-bit samples it must give

    s = voice(3 * CHUNK + 17)  # 16-bit WAV: three chunks, tail dropped
    with wave.open(os.path.join(root, "a", "one.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(s.tobytes())
    files["a/one.wav"] = high_u8(s)

    s8 = rng.integers(0, 256, size=2 * CHUNK + 5).astype(np.uint8)  # 8-bit WAV is unsigned already
    with wave.open(os.path.join(root, "a-8bit.WAV"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(1), w.setframerate(16000), w.writeframes(s8.tobytes())
    files["a-8bit.WAV"] = s8.tobytes()

    s24 = rng.integers(-(1 << 23), 1 << 23, size=CHUNK + 1)  # 24-bit WAV: the top byte
    with wave.open(os.path.join(root, "b24.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(3), w.setframerate(16000)
        w.writeframes(b"".join(int(v).to_bytes(3, "little", signed=True) for v in s24))
    files["b24.wav"] = (((s24 >> 16) + 128) & 0xFF).astype(np.uint8).tobytes()

    sf = voice(5 * CHUNK + 1000)  # FLAC, decoded by libFLAC, written here by hand
    flac = flac_verbatim(sf)
    with open(os.path.join(root, "a", "two.flac"), "wb") as f:
        f.write(flac)
    files["a/two.flac"] = high_u8(sf)

    short = voice(1000)  # shorter than one chunk: contributes nothing
    with wave.open(os.path.join(root, "c-short.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(short.tobytes())
    files["c-short.wav"] = high_u8(short)

    want = b"".join(files[rel][:len(files[rel]) // CHUNK * CHUNK] for rel in sorted_files(root, {".wav", ".flac"}))
    # whole-path byte order puts "a-8bit.WAV" before "a/one.wav" ('-' < '/'); a walk
    # that sorted each folder on its own would not
    check(sorted_files(root, {".wav", ".flac"})[0] == "a-8bit.WAV", "test setup: unexpected order")
    got, report = prepared("audio", root, tmp, "--no-cache")
    check(got is not None and len(got) == len(want) == 11 * CHUNK,
          f"audio: {None if got is None else len(got)} bytes, expected {len(want)}")
    check(got == want, "audio: bytes differ from Python's high byte + 128")
    check(hashlib.sha256(want).hexdigest() in report and "5 files" in report, f"audio report: {report}")

    # a real LibriSpeech file: its STREAMINFO sample count and MD5 (checked by libFLAC)
    real = os.path.join(DATA, "audio", "librispeech", "test-other", "1688", "1688-142285-0000.flac")
    with open(real, "rb") as f:
        head = f.read(42)
    total = int.from_bytes(head[8 + 10:8 + 18], "big") & ((1 << 36) - 1)
    got, report = prepared("audio", real, tmp, "--no-cache")
    check(got is not None and len(got) == total // CHUNK * CHUNK, f"real FLAC: {report} (samples {total})")

    # damage: one flipped sample bit fails the frame CRC; a wrong MD5 fails the check
    bad = os.path.join(tmp, "badaud")
    os.makedirs(bad)
    broken = bytearray(flac)
    broken[len(broken) // 2] ^= 0x10
    with open(os.path.join(bad, "x.flac"), "wb") as f:
        f.write(broken)
    p = run("--no-cache", "audio", bad)
    check(p.returncode == 1 and b"x.flac" in p.stderr, f"damaged FLAC: rc {p.returncode} {p.stderr!r}")
    md5_off = 8 + 18
    wrong = bytearray(flac)
    wrong[md5_off] ^= 1
    with open(os.path.join(bad, "x.flac"), "wb") as f:
        f.write(wrong)
    p = run("--no-cache", "audio", bad)
    check(p.returncode == 1 and b"MD5" in p.stderr, f"wrong MD5: rc {p.returncode} {p.stderr!r}")


# ---------------------------------------------------------------- random and text

def splitmix64(seed, n):
    out = bytearray()
    s = seed
    mask = (1 << 64) - 1
    while len(out) < n:
        s = (s + 0x9E3779B97F4A7C15) & mask
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        out += z.to_bytes(8, "little")
    return bytes(out[:n])


def test_random_text(tmp):
    want = splitmix64(12345, 100003)
    got, report = prepared("random", "12345", tmp, "--size", "100003")
    check(got == want, "random: bytes differ from Python's SplitMix64")
    check(hashlib.sha256(want).hexdigest() in report, f"random report: {report}")
    got, _ = prepared("random", "0", tmp, "--size", "64")
    check(got == splitmix64(0, 64), "random seed 0 differs")
    p = run("random", "x1")
    check(p.returncode == 1, "random: a seed that is not a number must fail")

    path = os.path.join(tmp, "some.txt")
    with open(path, "wb") as f:
        f.write(b"The quick brown fox.\n" * 300)
    got, report = prepared("text", path, tmp)
    with open(path, "rb") as f:
        check(got == f.read(), "text: not the file as it is")
    check(hashlib.sha256(got or b"").hexdigest() in report, f"text report: {report}")

    p = run("pictures")
    check(p.returncode == 1 and b"unknown data set" in p.stderr, f"unknown set: {p.stderr!r}")

    bad = os.path.join(tmp, "no-such-folder", "out.bin")
    p = run("-o", bad, "random", "1", "--size", "64")
    check(p.returncode == 1 and b"cannot write" in p.stderr and not p.stdout,
          f"unwritable output: rc {p.returncode}, stdout {p.stdout!r}, stderr {p.stderr!r}")


def main():
    with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
        os.environ["BT_CACHE"] = os.path.join(tmp, "no-cache-here")
        test_images(tmp)
        test_audio(tmp)
        test_random_text(tmp)
        check(not os.path.exists(os.environ["BT_CACHE"]), "--no-cache runs wrote a cache")
    return check.report()


if __name__ == "__main__":
    sys.exit(main())
