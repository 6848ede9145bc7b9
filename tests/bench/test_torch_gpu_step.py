"""bench/torch_gpu_step.py, the PyTorch GPU baseline that device_check runs beside `finegpt
bench --device cuda`: it runs (here on the CPU, tiny), prints its JSON line, and computes the
finegpt / PyTorch tokens/s ratio only against a finegpt log of the same shape."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "bench", "torch_gpu_step.py")
TINY = ["--device", "cpu", "--B", "2", "--T", "32", "--L", "2", "--NH", "2", "--C", "64", "--V",
        "65", "--steps", "2", "--warmup", "1"]


def run(*args):
    p = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


class TorchGpuStep(unittest.TestCase):
    def test_runs_and_reports(self):
        r = json.loads(run(*TINY).splitlines()[0])
        self.assertEqual((r["impl"], r["B"], r["T"]), ("pytorch-gpu", 2, 32))
        self.assertGreater(r["tokens_per_s"], 0)
        self.assertNotIn("finegpt_over_pytorch", r)

    def test_ratio_only_against_the_same_shape(self):
        with tempfile.TemporaryDirectory() as d:
            log = os.path.join(d, "finegpt.log")
            for B, expect in ((2, True), (4, False)):
                with open(log, "w") as f:
                    f.write("finegpt bench --device cuda: ...\n")
                    f.write(json.dumps({"impl": "finegpt-cuda", "B": B, "T": 32,
                                        "tokens_per_s": 1e9}) + "\n")
                out = run(*TINY, "--against", log)
                r = json.loads(out.splitlines()[0])
                self.assertEqual("finegpt_over_pytorch" in r, expect, out)
                if expect:
                    self.assertAlmostEqual(r["finegpt_over_pytorch"], 1e9 / r["tokens_per_s"])
                    self.assertIn("finegpt / pytorch tokens/s at B=2 T=32", out)

    @unittest.skipUnless(hasattr(torch.nn.functional, "scaled_dot_product_attention"),
                         "this torch has no scaled_dot_product_attention")
    def test_flash_path_is_the_reference_function(self):
        sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
        sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
        import torch_reference as tr
        import torch_gpu_step as tg
        attn = tr.CausalSelfAttention(64, 2, 16, True)
        x = torch.randn(3, 16, 64)
        ref = tr.CausalSelfAttention.forward(attn, x)
        torch.testing.assert_close(tg.flash_forward(attn, x), ref, rtol=1e-5, atol=1e-5)


if __name__ == "__main__":
    unittest.main()
