"""figlib - helpers shared by tools/sweep and tools/context-study: data
specs read as bt-train reads them, evenly spaced chunk subsets (bt-eval's
rule), checkpoint info, budgets and durations, atomic files, and a child
runner that stops cleanly on signals and at a deadline."""
import json
import lzma
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

CHUNK = 2048            # the paper's chunk size
HEADER = 112            # .bt container header (version 3); then 4 bytes per chunk (coder/coder.h)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROG = os.path.basename(sys.argv[0])   # prefix of messages


class Stop(Exception):
    """The deadline or a signal: stop here, keep what is finished."""


def die(msg):
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(1)


def note(msg):
    print(f"{PROG}: {msg}", flush=True)


# ---- parsing ----

def parse_count(s):
    """'24M' -> 24000000; k/K, M, G suffixes (M is mega: minutes are 'm')."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKMG]?)", s.strip())
    if not m:
        raise ValueError(s)
    return int(round(float(m.group(1)) * {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}[m.group(2)]))


def parse_duration(s):
    """'90s', '5m', '2h', '2h30m' -> seconds."""
    s = s.strip()
    if not re.fullmatch(r"(\d+(\.\d+)?[smh])+", s):
        raise ValueError(s)
    return sum(float(v) * {"s": 1, "m": 60, "h": 3600}[u] for v, u in re.findall(r"(\d+(?:\.\d+)?)([smh])", s))


def parse_budget(s):
    """A budget: tokens ('24M', '500K') or wall time per model ('30m', '2h')."""
    try:
        return ("tokens", parse_count(s))
    except ValueError:
        pass
    try:
        return ("time", parse_duration(s))
    except ValueError:
        raise ValueError(f"bad budget '{s}': tokens (24M, 500K) or a duration (90s, 30m, 2h)")


def budget_text(b):
    kind, v = b
    if kind == "tokens":
        return f"{v / 1e6:g}M tokens" if v >= 1e6 else f"{v / 1e3:g}K tokens"
    return f"{v / 60:g} min" if v < 7200 else f"{v / 3600:g} h"


def human_bytes(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def human_s(s):
    s = int(round(s))
    if s < 90:
        return f"{s} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


# ---- small file helpers ----

def write_atomic(path, data):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.replace(tmp, path)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_json(path, obj):
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


# ---- children: one at a time, stopped cleanly by signals and the deadline ----

class Runner:
    def __init__(self, deadline):
        self.deadline = deadline
        self.child = None
        self.signal = 0
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, self._on_signal)

    def _on_signal(self, signum, frame):
        self.signal = signum
        if self.child and self.child.poll() is None:
            try:
                self.child.send_signal(signal.SIGTERM)  # bt-train saves a checkpoint on it
            except OSError:
                pass

    def left(self):
        return None if self.deadline is None else self.deadline - time.time()

    def check(self):
        if self.signal:
            raise Stop(f"stopped by signal {self.signal}")
        if self.deadline is not None and self.left() <= 0:
            raise Stop("the --time budget is used up")

    def run(self, cmd, stdout=None, env=None, kill_at_deadline=True):
        """Runs cmd; returns (exit code, stderr text). A deadline passed while it
        runs sends it SIGTERM (unless kill_at_deadline is false: bt-train stops
        itself with --time)."""
        self.check()
        with tempfile.TemporaryFile() as err:
            self.child = subprocess.Popen(cmd, stdout=stdout, stderr=err, env=env)
            while True:
                try:
                    rc = self.child.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    if kill_at_deadline and self.deadline is not None and self.left() <= 0:
                        self.child.send_signal(signal.SIGTERM)
            self.child = None
            err.seek(0)
            text = err.read().decode("utf-8", "replace")
        return rc, text


# ---- checkpoints ----

def ckpt_info(build, path):
    """bt-ckpt info, parsed: params, sha, and (if trainable) step/total/tokens/elapsed."""
    r = subprocess.run([f"{build}/bt-ckpt", "info", path], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    info = {}
    m = re.search(r"params\s+(\d+)", r.stdout)
    info["params"] = int(m.group(1)) if m else None
    m = re.search(r"weights\s+sha256 ([0-9a-f]{64})", r.stdout)
    info["sha256"] = m.group(1) if m else None
    m = re.search(r"training\s+step (\d+) of (\d+), (\d+) tokens, (\d+) s", r.stdout)
    if m:
        info.update(step=int(m.group(1)), total=int(m.group(2)), tokens=int(m.group(3)), elapsed=int(m.group(4)))
    m = re.search(r"best val\s+([0-9.]+)", r.stdout)
    info["best_val"] = float(m.group(1)) if m else None
    return info


def thin_log(lines):
    """The records of a bt-train JSON-lines log worth keeping in git: every
    10th, the last, and every one with a validation."""
    return [l for i, l in enumerate(lines)
            if l.strip() and (i % 10 == 0 or i == len(lines) - 1 or '"val_bpb":null' not in l)]


def last_val_bpb(log):
    """The last validation bpb in a bt-train JSON-lines log (None if none)."""
    v = None
    try:
        for line in open(log):
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("val_bpb") is not None:
                v = r["val_bpb"]
    except OSError:
        pass
    return v


# ---- data: the evaluation sets ----

def cache_dir():
    c = os.environ.get("BT_CACHE")
    if c:
        return c
    return os.path.join(os.environ.get("HOME", "."), ".cache", "bt")


WIKI_SIZES = {"wiki100m": 100_000_000, "wiki-valid10m": 10_000_000}
ENWIK_SIZES = {"enwik8": 100_000_000, "enwik9": 1_000_000_000}


def read_spec(spec, length=None):
    """The leading `length` bytes (all if None) of a data spec as bt-train reads
    it: wiki100m / wiki-valid10m (bt's cache, else $BT_DATA/text/NAME.txt.xz),
    enwik8/9 (bt's cache, which bt-train fills), or a path (.xz unpacked)."""
    data_dir = os.environ.get("BT_DATA") or os.path.join(ROOT, "..", "shared", "data")
    path, size = spec, None
    if spec in WIKI_SIZES:
        size = WIKI_SIZES[spec]
        path = os.path.join(cache_dir(), spec + ".txt")
        if not (os.path.isfile(path) and os.path.getsize(path) == size):
            path = os.path.join(data_dir, "text", spec + ".txt.xz")
    elif spec in ENWIK_SIZES:
        size = ENWIK_SIZES[spec]
        path = os.path.join(cache_dir(), spec)
        if not os.path.isfile(path):
            die(f"{spec} is not in {cache_dir()}; bt-train fetches it on first use")
    if not os.path.isfile(path):
        die(f"cannot find data {spec} ({path})")
    want = -1 if length is None else length
    if path.endswith(".xz"):
        out = bytearray()
        d = lzma.LZMADecompressor()
        with open(path, "rb") as f:
            while length is None or len(out) < length:
                block = f.read(1 << 20)
                if not block:
                    break
                out += d.decompress(block)
                if d.eof:
                    break
        data = bytes(out if length is None else out[:length])
    else:
        with open(path, "rb") as f:
            data = f.read(want) if want >= 0 else f.read()
    if size is not None and len(data) != (size if length is None else min(size, length)):
        die(f"{spec}: read {len(data)} bytes from {path}, expected {size if length is None else length}")
    return data


def select_chunks(data, cap):
    """All of data if it fits in cap bytes, else k = cap // CHUNK of its full
    chunks, evenly spaced: chunk j is chunk floor(j * n / k) (bt-eval's rule)."""
    if len(data) <= cap:
        return data, False
    n, k = len(data) // CHUNK, cap // CHUNK
    if k < 1:
        die(f"--eval-bytes {cap} is less than one {CHUNK}-byte chunk")
    return b"".join(data[(j * n // k) * CHUNK:(j * n // k + 1) * CHUNK] for j in range(k)), True


def gp_quote(s):
    return s.replace("\\", "\\\\").replace('"', '\\"')
