"""bench/gpu_curve.py, issue 10's training-curve check that device_check runs on a GPU: here on
the CPU, tiny, in float32, where finegpt and the PyTorch mirror of its run (same weights, batches
in finegpt's sequential order across several shards, schedule, evaluation) agree to float32
rounding; and a finegpt run that differs (another warmup) is reported and fails the check."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import torch  # noqa: F401  (the script runs on this python, which must hold PyTorch)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from finegpt_testing import FINEGPT, SHAKESPEARE, run, write_shard  # noqa: E402

SCRIPT = os.path.join(HERE, "..", "..", "bench", "gpu_curve.py")


class GpuCurve(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.data = os.path.join(cls._tmp.name, "data")
        # A val shard of 1025 tokens and train shards of 410 (6 batches of 2x32 each), the
        # last of them shorter; then one too small for a batch, which the loader passes over.
        # 64 steps go through every shard and wrap around to the first.
        run("prepare", f"--input={SHAKESPEARE}", f"--out={cls.data}", "--val-tokens=1025",
            "--shard-tokens=410", "--max-tokens=5000", check=True)
        write_shard(os.path.join(cls.data, "data_train_000099.bin"), list(range(1000, 1030)))

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def curve(self, *extra):
        out = tempfile.mkdtemp(dir=self._tmp.name)
        p = subprocess.run([sys.executable, SCRIPT, "--finegpt", FINEGPT, "--data", self.data,
                            "--out", out, "--device", "cpu", "--L", "2", "--NH", "2", "--C", "32",
                            "--T", "32", "--B", "2", "--steps", "64", "--eval_interval", "16",
                            "--eval_iters", "3", "--warmup", "2", "--lr", "3e-3", "--threads", "2",
                            *extra], capture_output=True, text=True, timeout=600)
        self.assertIn(p.returncode, (0, 1), p.stdout + p.stderr)
        return p.returncode, json.loads(p.stdout.splitlines()[-1]), p.stdout

    def test_finegpt_tracks_pytorch_and_a_different_run_is_caught(self):
        rc, r, out = self.curve("--variant", "finegpt=", "--variant", "warmup8=--warmup_iters=8",
                                "--tolerance", "1e-4")
        self.assertEqual(sorted(map(int, r["pytorch_val"])), [0, 16, 32, 48, 64])
        losses = [r["pytorch_val"][k] for k in ("0", "64")]
        self.assertLess(losses[1], losses[0] - 0.1, "the model should learn something")
        self.assertLess(r["worst_relative_difference"]["finegpt"], 1e-5, out)
        # The run with another schedule is reported, and fails the check.
        self.assertGreater(r["worst_relative_difference"]["warmup8"], 1e-4, out)
        self.assertEqual(rc, 1, out)
        self.assertFalse(r["within_tolerance"])


if __name__ == "__main__":
    unittest.main()
