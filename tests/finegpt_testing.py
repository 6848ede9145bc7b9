"""Shared helpers for the Python tests: run finegpt, prepare tiny data, check clean errors."""
import os
import subprocess
import tempfile
import unittest

import numpy as np

FINEGPT = os.environ.get("FINEGPT_BIN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "finegpt"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Public-domain text committed with the repository (corpora/README.md).
SHAKESPEARE = os.path.join(ROOT, "corpora", "tinyshakespeare.txt")


def run(*args, cwd=None, check=False, timeout=600):
    p = subprocess.run([FINEGPT, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"finegpt {' '.join(map(str, args))} failed:\n{p.stdout}\n{p.stderr}")
    return p


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write_shard(path, tokens):
    """An llm.c token shard exactly as llm.c's data_common.write_datafile writes it."""
    header = np.zeros(256, dtype=np.int32)
    header[0], header[1], header[2] = 20240520, 1, len(tokens)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(tokens, dtype=np.uint16).tobytes())


class CliTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def assertCleanError(self, p, *needles):
        """A failed run: non-zero exit (not a crash), one line on stderr naming the problem."""
        self.assertNotEqual(p.returncode, 0, f"expected failure, got success:\n{p.stdout}")
        self.assertGreater(p.returncode, 0, f"crashed with signal {-p.returncode}:\n{p.stderr}")
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, f"expected one line on stderr, got:\n{p.stderr}")
        for n in needles:
            self.assertIn(n, lines[0])
        return lines[0]

    def assertNoPartialFiles(self, folder):
        if not os.path.isdir(folder):
            return
        for root, _, files in os.walk(folder):
            for f in files:
                self.assertNotIn(".tmp", f, f"half-written file left: {os.path.join(root, f)}")

    def char_data(self, name="chars", chars=None):
        """Char-level shards of tiny Shakespeare via finegpt prepare, in self.tmp/<name>."""
        out = os.path.join(self.tmp, name)
        args = ["prepare", "--tokenizer", "char", "--input", SHAKESPEARE, "--out", out]
        run(*args, check=True)
        return out

    def write_config(self, text, name="config.py"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path
