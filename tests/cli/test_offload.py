"""Optimizer offload (offload = 'optimizer', issue 15) from the command line: the CPU engine's note
(nothing to offload; it trains as normal), `finegpt plan` on a 24 GB card (offload makes GPT-2 XL
fit, at the stated throughput model's cost) and its table column, and on the CUDA engine emulated
on the host (finegpt_emulated): training with offload gives the losses of training without, and
the GPU check's script (bench/offload_check.py, run by scripts/device_check.sh) runs at a tiny
size."""
import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from finegpt_testing import ROOT, CliTest, run  # noqa: E402

EMULATED = os.environ.get("FINEGPT_EMULATED_BIN", "")
TINY = ["--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4",
        "--max_iters=6", "--eval_interval=100", "--eval_iters=1", "--threads=1",
        "--gradient_accumulation_steps=2", "--learning_rate=3e-3", "--data_order=sequential"]
XL_P = 1557686400  # GPT-2 XL's parameters with the vocabulary padded to 50304 (by hand)


def metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(l) for l in f if '"loss"' in l]


class OffloadCli(CliTest):
    def test_cpu_engine_notes_there_is_nothing_to_offload(self):
        data = self.char_data()
        runs = {}
        for off in ("none", "optimizer"):
            out = os.path.join(self.tmp, off)
            p = run("train", f"--data_dir={data}", f"--out_dir={out}", "--device=cpu", *TINY,
                    f"--offload={off}", check=True)
            self.assertEqual("nothing to offload on the CPU engine" in p.stdout, off != "none")
            runs[off] = [r["loss"] for r in metrics(out)]
        self.assertEqual(len(runs["none"]), 7)
        self.assertEqual(runs["optimizer"], runs["none"])

    def test_plan_says_offload_makes_gpt2_xl_fit_a_4090_and_what_it_costs(self):
        p = run("plan", "--gpu", "RTX 4090", check=True).stdout
        self.assertIn("offload makes GPT-2 1558M fit RTX 4090", p)
        self.assertIn("without offload GPT-2 774M", p)
        m = re.search(r"with offload GPT-2 1558M \(batch (\d+) x (\d+), recompute (\d), "
                      r"([\d.]+) GiB on the GPU \+ ([\d.]+) GiB pinned host memory, (\d+) "
                      r"tokens/s: [\d.]+% of its (\d+) without", p)
        self.assertIsNotNone(m, p)
        B, accum = int(m[1]), int(m[2])
        self.assertEqual(B * accum * 1024, 524288)
        self.assertLess(float(m[4]), 23.0)
        self.assertAlmostEqual(float(m[5]), 14 * XL_P / 2**30, delta=0.06)
        # The stated model: per step 2 x 2 bytes/param at 25.2 GB/s (PCIe 4.0 x16 at 80%) and
        # 28 bytes/param at 25 GB/s on top of the compute time.
        compute = int(m[7])
        want = 524288 / (524288 / compute + 4 * XL_P / 25.2e9 + 28 * XL_P / 25e9)
        self.assertAlmostEqual(int(m[6]), want, delta=1 + 2e-6 * want)
        self.assertIn("28 bytes/param", p)
        # A faster host link and host memory: a smaller cost.
        q = run("plan", "--gpu", "RTX 4090", "--pcie", "50", "--host_bw", "100", check=True).stdout
        n = re.search(r"with offload GPT-2 1558M .*?(\d+) tokens/s: ([\d.]+)%", q)
        self.assertGreater(float(n[2]), float(re.search(r"tokens/s: ([\d.]+)%", p)[1]))

    def test_table_gains_the_largest_gpt2_with_offload(self):
        p = run("plan", "--table", check=True).stdout
        rows = p.split("largest GPT-2 that trains")[1].splitlines()
        row = next(l for l in rows if "RTX 4090" in l).split()
        self.assertEqual(row[0], "24")
        self.assertEqual(row[3:5], ["774M", "1558M"])
        row80 = next(l for l in rows if "A100" in l).split()
        self.assertIn("1558M", row80)

    def test_check_lists_offload_and_a_config_with_it_fits(self):
        xl = "n_layer = 48\nn_head = 25\nn_embd = 1600\nbatch_size = 8\n" \
             "gradient_accumulation_steps = 64\nrecompute = 3\n"
        c = self.write_config(xl)
        p = run("plan", "--check", c, "--gpu", "RTX 4090")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("offload = 'optimizer'", p.stdout)
        c = self.write_config(xl + "offload = 'optimizer'\n", "off.py")
        p = run("plan", "--check", c, "--gpu", "RTX 4090", check=True)
        self.assertIn("fits RTX 4090", p.stdout)
        self.assertIn("pinned host memory", p.stdout)
        # train --dry_run shows both sides of the plan.
        d = run("train", c, "--dry_run", check=True).stdout
        self.assertRegex(d, r"host +\d+\.\d+ GiB +\(pinned host memory")


@unittest.skipUnless(EMULATED and os.path.exists(EMULATED),
                     "needs finegpt_emulated (the CUDA seam emulated on the host)")
class OffloadEmulated(CliTest):
    def emu(self, *args, env=None, timeout=600):
        return subprocess.run([EMULATED, *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, **(env or {})))

    def test_training_with_offload_gives_the_losses_of_training_without(self):
        data = self.char_data()
        runs = {}
        for off in ("none", "optimizer"):
            out = os.path.join(self.tmp, off)
            p = self.emu("train", f"--data_dir={data}", f"--out_dir={out}", "--device=cuda",
                         *[a for a in TINY if a != "--n_embd=32"], "--n_embd=64",
                         "--grad_clip=0.5", f"--offload={off}")
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("training on cuda (finegpt host emulation", p.stdout)
            self.assertEqual("pinned host memory (optimizer offload)" in p.stdout,
                             off == "optimizer", p.stdout)
            runs[off] = [(r["loss"], r["grad_norm"]) for r in metrics(out)]
        self.assertEqual(len(runs["none"]), 7)
        self.assertEqual(runs["optimizer"], runs["none"])

    def test_the_gpu_checks_script_runs_at_a_tiny_size(self):
        p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "offload_check.py"),
                            "--finegpt", EMULATED, "--tiny", "--cap", "64MiB"],
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("offload_check: ok", p.stdout)
        self.assertIn("FINEGPT_DEVICE_MEMORY_CAP=64MiB", p.stdout)
        self.assertIn("optimizer offload", p.stdout)
        # Below what the model needs, the cap stops it with a clear error.
        q = self.emu("bench", "--device", "cuda", "--n_layer", 2, "--n_head", 2, "--n_embd", 64,
                     "--vocab_size", 101, "--block_size", 32, "--seq_len", 32,
                     "--offload", "optimizer", env={"FINEGPT_DEVICE_MEMORY_CAP": "100KiB"})
        self.assertNotEqual(q.returncode, 0)
        self.assertIn("FINEGPT_DEVICE_MEMORY_CAP", q.stderr)


if __name__ == "__main__":
    unittest.main()
