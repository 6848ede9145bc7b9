"""bench/gpu_memory_check.py: issue 4's GPU memory criterion over `finegpt bench --device cuda`
logs (the overhead measured on the first run, every other run within 3% of plan + overhead)."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                      "gpu_memory_check.py")
MIB = 1 << 20


def bench_log(path, plan_mib, model_mib):
    record = {"impl": "finegpt-cuda", "gpu": "H100 SXM", "B": 8, "T": 1024, "recompute": 0,
              "step_ms_median": 100.0, "tokens_per_s": 80000, "tflops": 60.0, "mfu": 0.06,
              "context_bytes": 500 * MIB, "model_bytes": model_mib * MIB,
              "plan_bytes": plan_mib * MIB}
    with open(path, "w") as f:
        f.write("finegpt bench --device cuda: ...\n" + json.dumps(record) + "\n")


class GpuMemoryCheck(unittest.TestCase):
    def run_check(self, *runs):
        with tempfile.TemporaryDirectory() as d:
            paths = []
            for i, (plan, model) in enumerate(runs):
                paths.append(os.path.join(d, f"run{i}.log"))
                bench_log(paths[-1], plan, model)
            return subprocess.run([sys.executable, SCRIPT, *paths], capture_output=True,
                                  text=True)

    def test_within_three_percent_passes(self):
        # overhead 100 MiB from the first run; 10000 + 100 expected, 10300 measured: +1.98%
        p = self.run_check((1000, 1100), (10000, 10300))
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("fixed overhead 100.0 MiB", p.stdout)
        self.assertIn("1.98%", p.stdout)

    def test_a_miss_fails(self):
        p = self.run_check((1000, 1100), (10000, 10300), (10000, 9500))  # -5.94%
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("-5.94%", p.stdout)
        self.assertIn("a run misses", p.stdout)

    def test_without_gpu_results_it_says_so(self):
        with tempfile.TemporaryDirectory() as d:
            skipped = [os.path.join(d, f"s{i}.log") for i in range(2)]
            for s in skipped:
                with open(s, "w") as f:
                    f.write("no CUDA device: skipped (none)\n")
            p = subprocess.run([sys.executable, SCRIPT, *skipped], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        self.assertIn("fewer than two bench runs", p.stdout)


if __name__ == "__main__":
    unittest.main()
