"""checks.py - what the Python tests share (ctest runs them as `test_X.py
BUILD SRC`): the build and source folders, the data folder ($BT_DATA, else
../shared/data beside the source tree), and a tally of named checks that a
test reports and turns into its exit status at the end."""
import hashlib
import os
import sys

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
SRC = sys.argv[2] if len(sys.argv) > 2 else "."
DATA = os.environ.get("BT_DATA", os.path.join(SRC, "..", "shared", "data"))
UB = 512  # a checkpoint's user block: its size (bytes 8-16) and SHA-256 (16-48) of all past it


def reseal(path):
    """Rewrites a checkpoint's user block (size and SHA-256) for the file as
    it is now, as an attacker or a test that edits one with h5py would."""
    with open(path, "r+b") as f:
        data = f.read()
        f.seek(8)
        f.write(len(data).to_bytes(8, "little"))
        f.write(hashlib.sha256(data[UB:]).digest())


class Tally:
    """check(cond, what): counts cond, printing what when it fails."""

    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def __call__(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", what, file=sys.stderr)

    def report(self):
        """Prints the counts; returns the exit status (1 if any check failed)."""
        print(f"{self.name}: {self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0
