"""checks.py - what the Python tests share (ctest runs them as `test_X.py
BUILD SRC`): the build and source folders, the data folder ($BT_DATA, else
../shared/data beside the source tree), and a tally of named checks that a
test reports and turns into its exit status at the end."""
import os
import sys

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
SRC = sys.argv[2] if len(sys.argv) > 2 else "."
DATA = os.environ.get("BT_DATA", os.path.join(SRC, "..", "shared", "data"))


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
