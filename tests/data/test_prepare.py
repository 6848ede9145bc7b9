"""Tests for `finegpt prepare --tokenizer char` (src/cli/prepare.cpp).

The expected output is computed here the way nanoGPT's data/shakespeare_char/prepare.py does
(chars = sorted(set(data)), first int(n*0.9) characters train, the rest val) and the shards are
read the way llm.c reads them (256 x int32 header, then uint16 tokens). Bad inputs must give a
non-zero exit, one line on stderr naming the problem, and no files in the output folder.

Run by ctest with FINEGPT_BIN (the finegpt binary).
"""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np


BIN = os.environ.get("FINEGPT_BIN", "")
SHAKESPEARE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "corpora",
                           "tinyshakespeare.txt")  # corpora/README.md


def setUpModule():
    if not BIN or not os.access(BIN, os.X_OK):
        raise RuntimeError("set FINEGPT_BIN to the finegpt binary (ctest does)")


def run(*args):
    return subprocess.run([BIN, "prepare", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def read_shard(path):
    """An llm.c token shard as llm.c's loader reads it; checks the header on the way."""
    raw = np.fromfile(path, dtype=np.uint8)
    assert raw.size >= 1024, f"{path}: {raw.size} bytes"
    header = raw[:1024].view(np.int32)
    assert header[0] == 20240520, header[0]
    assert header[1] == 1, header[1]
    assert not header[3:].any(), "unused header fields must be 0"
    n = int(header[2])
    assert raw.size == 1024 + 2 * n, (raw.size, n)
    return raw[1024:].view(np.uint16)


def nanogpt_char_split(text, val_fraction=0.1):
    """nanoGPT's shakespeare_char prepare.py, as numbers."""
    chars = sorted(list(set(text)))
    stoi = {ch: i for i, ch in enumerate(chars)}
    n = len(text)
    cut = int(n * (1 - val_fraction))
    encode = lambda s: np.array([stoi[c] for c in s], dtype=np.uint16)
    return chars, encode(text[:cut]), encode(text[cut:])


class PrepareTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="finegpt_test_prepare_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def write(self, name, data):
        p = self.path(name)
        with open(p, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        return p

    def check_outputs(self, out, name, text, val_fraction=0.1):
        chars, train, val = nanogpt_char_split(text, val_fraction)
        self.assertEqual(sorted(os.listdir(out)),
                         sorted(["meta.json", f"{name}_train_000001.bin", f"{name}_val_000000.bin"]))
        got_train = read_shard(os.path.join(out, f"{name}_train_000001.bin"))
        got_val = read_shard(os.path.join(out, f"{name}_val_000000.bin"))
        np.testing.assert_array_equal(got_train, train)
        np.testing.assert_array_equal(got_val, val)
        with open(os.path.join(out, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        self.assertEqual(meta["tokenizer"], "char")
        self.assertEqual(meta["vocab_size"], len(chars))
        self.assertEqual(meta["itos"], chars)
        itos = meta["itos"]
        decoded = "".join(itos[i] for i in got_train) + "".join(itos[i] for i in got_val)
        self.assertEqual(decoded, text)
        return got_train, got_val, meta

    def test_help(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("usage: finegpt prepare", r.stdout)
        self.assertIn("--tokenizer", r.stdout)
        self.assertIn("--val-fraction", r.stdout)
        self.assertEqual(r.stderr, "")

    def test_tinyshakespeare_matches_nanogpt(self):
        out = self.path("shakespeare_char")
        r = run("--tokenizer", "char", "--input", SHAKESPEARE, "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(SHAKESPEARE, encoding="utf-8") as f:
            text = f.read()
        self.assertEqual(len(text), 1115394)
        train, val, meta = self.check_outputs(out, "shakespeare_char", text)
        self.assertEqual(meta["vocab_size"], 65)
        self.assertEqual(len(train), 1003854)
        self.assertEqual(len(val), 111540)
        for number in ("1115394", "65", "1003854", "111540"):
            self.assertIn(number, r.stdout)

    def test_inputs_concatenate_in_order_with_name_and_fraction(self):
        a = "Hello, w\u00f6rld \u20ac\n"
        b = "\U0001F600 second file\n" * 5
        pa, pb = self.write("a.txt", a), self.write("b.txt", b)
        out = self.path("o")
        r = run("--tokenizer=char", "--input", pb, pa, "--out", out, "--name", "mix",
                "--val-fraction", "0.25")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_outputs(out, "mix", b + a, 0.25)

    def test_name_defaults_to_out_folder_and_rerun_replaces(self):
        p = self.write("t.txt", "abcabcabcabc\n")
        out = self.path("deep", "tiny") + os.sep  # trailing slash; parents created
        for _ in range(2):
            r = run("--tokenizer", "char", "--input", p, "--out", out)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.check_outputs(out, "tiny", "abcabcabcabc\n")

    def expect_error(self, args, *needles, out=None):
        out = out or self.path("out")
        before = sorted(os.listdir(out)) if os.path.isdir(out) else None
        r = run(*args, "--out", out) if "--out" not in args else run(*args)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        lines = r.stderr.rstrip("\n").split("\n")
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("finegpt prepare: error: "), lines[0])
        for needle in needles:
            self.assertIn(needle, lines[0])
        after = sorted(os.listdir(out)) if os.path.isdir(out) else None
        self.assertEqual(after, before, "files left in the output folder")
        return lines[0]

    def test_missing_input_file(self):
        missing = self.path("nope.txt")
        self.expect_error(["--tokenizer", "char", "--input", missing], missing, "no such file")

    def test_missing_input_flag(self):
        self.expect_error(["--tokenizer", "char"], "missing --input")

    def test_missing_out_flag(self):
        p = self.write("t.txt", "hello\n")
        r = run("--tokenizer", "char", "--input", p)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("missing --out", r.stderr)
        self.assertEqual(len(r.stderr.rstrip("\n").split("\n")), 1, r.stderr)

    def test_empty_input(self):
        p = self.write("empty.txt", "")
        self.expect_error(["--tokenizer", "char", "--input", p], p, "empty")
        q = self.write("empty2.txt", "")
        self.expect_error(["--tokenizer", "char", "--input", p, q], "empty")

    def test_invalid_utf8(self):
        good = self.write("good.txt", "fine text\n")
        bad = self.write("bad.txt", b"caf\xe9 au lait\n")  # Latin-1, not UTF-8
        self.expect_error(["--tokenizer", "char", "--input", good, bad], bad,
                          "invalid UTF-8 at byte 3")

    def test_unknown_flag(self):
        p = self.write("t.txt", "hello\n")
        line = self.expect_error(["--tokenizer", "char", "--input", p, "--frobnicate", "3"],
                                 "'--frobnicate'")
        self.assertIn("unknown option", line)

    def test_vocabulary_too_large(self):
        cps = [c for c in range(0x20, 0x20 + 65536 + 2048) if not 0xD800 <= c <= 0xDFFF][:65536]
        p = self.write("big.txt", "".join(map(chr, cps)))
        self.expect_error(["--tokenizer", "char", "--input", p], "65536 distinct characters",
                          "65535")

    def test_bad_val_fraction_and_tokenizer(self):
        p = self.write("t.txt", "hello\n")
        self.expect_error(["--tokenizer", "char", "--input", p, "--val-fraction", "1.5"],
                          "--val-fraction '1.5'")
        self.expect_error(["--tokenizer", "bpe", "--input", p], "--tokenizer 'bpe'")
        self.expect_error(["--tokenizer", "char", "--input", self.write("one.txt", "x")],
                          "too few to split")

    def test_refuses_to_mix_with_other_shards(self):
        out = self.path("mixed")
        os.makedirs(out)
        header = np.zeros(256, dtype=np.int32)
        header[:3] = (20240520, 1, 3)
        with open(os.path.join(out, "other_train_000001.bin"), "wb") as f:
            f.write(header.tobytes())
            f.write(np.array([1, 2, 3], dtype=np.uint16).tobytes())
        p = self.write("t.txt", "hello there\n")
        self.expect_error(["--tokenizer", "char", "--input", p], "other_train_000001.bin",
                          out=out)


if __name__ == "__main__":
    unittest.main()
