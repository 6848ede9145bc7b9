"""finegpt plan from the command line: every catalog GPU's recommendation passes --check and
dry-runs in train; the guide's table; --check's fixes; the memory check in train; bad input."""
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from finegpt_testing import FINEGPT, CliTest, read, run  # noqa: E402

GUIDE_24GB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs",
                          "fineweb_160M_guide.py")


def catalog():
    out = run("plan", "--list", check=True).stdout.splitlines()[1:]
    return [re.split(r"\s{2,}", l.strip())[0] for l in out if l.strip()]


class Plan(CliTest):
    def test_every_gpu_recommendation_fits_and_trains(self):
        names = catalog()
        self.assertGreaterEqual(len(names), 23)
        for name in names:
            cfg = os.path.join(self.tmp, "plan.py")
            p = run("plan", "--gpu", name, "--write", cfg, "--force")
            self.assertEqual(p.returncode, 0, f"{name}: {p.stderr}")
            self.assertIn("tok/param", p.stdout)
            c = run("plan", "--check", cfg, "--gpu", name)
            self.assertEqual(c.returncode, 0, f"{name}: {c.stdout}{c.stderr}")
            self.assertIn("fits", c.stdout)
            d = run("train", cfg, "--dry_run")  # device='cuda': the CUDA engine's plan
            self.assertEqual(d.returncode, 0, f"{name}: {d.stderr}")
            self.assertIn("memory plan (cuda", d.stdout)
            # Cards without bf16 are planned in float32, which the CUDA engine cannot train yet:
            # the plan says so, and only for them.
            no_bf16 = name in ("T4", "V100 16GB", "V100 32GB")
            self.assertEqual("no bfloat16 tensor cores" in p.stdout, no_bf16, name)

    def test_table_reproduces_the_guide(self):
        p = run("plan", "--table", check=True)
        self.assertEqual(p.stdout.count("guide:"), 5)
        self.assertEqual(p.stdout.count("finegpt:"), 5)
        self.assertRegex(p.stdout, r"claimed 350M, true 124\.3M")
        self.assertRegex(p.stdout, r"claimed 160M, true 82\.0M")

    def test_check_gives_the_smallest_change(self):
        p = run("plan", "--check", GUIDE_24GB, "--gpu", "RTX 3060")
        self.assertEqual(p.returncode, 1)
        self.assertIn("does not fit", p.stdout)
        lines = p.stdout.splitlines()
        first = lines[lines.index(next(l for l in lines if l.startswith("changes"))) + 1]
        fixed = os.path.join(self.tmp, "fixed.py")
        with open(GUIDE_24GB) as f:
            text = f.read()
        m = re.match(r"\s*(recompute = \d|batch_size = \d+, gradient_accumulation_steps = \d+)", first)
        self.assertIsNotNone(m, first)
        with open(fixed, "w") as f:
            f.write(text + "\n" + m.group(1).replace(", ", "\n") + "\n")
        self.assertEqual(run("plan", "--check", fixed, "--gpu", "RTX 3060").returncode, 0)
        self.assertEqual(run("plan", "--check", GUIDE_24GB, "--gpu", "4090").returncode, 0)

    def test_common_variant_without_a_suffix(self):
        # Users type "H100" and "A100": the common variant, with a note naming the other.
        for typed, card, driver, other in [
                ("H100", "H100 SXM", "NVIDIA H100 80GB HBM3", "'H100 PCIe'"),
                ("a100", "A100 80GB SXM", "NVIDIA A100-SXM4-80GB", "'A100 40GB SXM'")]:
            p = run("plan", "--gpu", typed, check=True)
            self.assertIn(f"note: '{typed}' is taken as '{card}', the common one (the driver "
                          f"calls it \"{driver}\"); say {other} for the other", p.stdout)
            named = run("plan", "--gpu", card, check=True).stdout
            self.assertEqual(p.stdout.split("\n", 1)[1], named)  # the same plan as the full name

    def test_write_never_replaces_a_file_unasked(self):
        cfg = os.path.join(self.tmp, "mine.py")
        with open(cfg, "w") as f:
            f.write("n_layer = 3  # my own config\n")
        self.assertCleanError(run("plan", "--gpu", "4090", "--write", cfg), cfg, "--force")
        self.assertCleanError(run("plan", "--gpu", "4090", "--check", cfg, "--write", cfg),
                              "--write and --check")
        self.assertEqual(read(cfg), b"n_layer = 3  # my own config\n")
        run("plan", "--gpu", "4090", "--write", cfg, "--force", check=True)
        self.assertIn(b"n_layer", read(cfg))
        self.assertNotIn(b"my own config", read(cfg))

    def test_bad_input(self):
        self.assertCleanError(run("plan", "--gpu", "rtx 4095"), "RTX 4090")
        self.assertCleanError(run("plan", "--gpu", "rtx 6000"), "ambiguous")
        self.assertCleanError(run("plan", "--vram", "1GB"), "too small")
        self.assertCleanError(run("plan", "--vram", "lots"), "lots")
        self.assertCleanError(run("plan", "--gpu", "4090", "--tokens", "1000"), "one optimizer step")
        self.assertCleanError(run("plan", "--gpu", "4090", "--tokens", "ten"), "--tokens")
        self.assertCleanError(run("plan", "--gpu", "4090", "--gpus", "0"), "--gpus")
        self.assertCleanError(run("plan", "--gpu", "4090", "--hours", "-1"), "--hours")
        self.assertCleanError(run("plan", "--gpu", "4090", "--vram", "24GB"), "not both")
        self.assertCleanError(run("plan"), "--gpu")
        self.assertCleanError(run("plan", "--check", os.path.join(self.tmp, "none.py"), "--gpu",
                                  "4090"), "none.py")


class TrainMemoryCheck(CliTest):
    TINY = ["--n_layer=2", "--n_head=2", "--n_embd=64", "--block_size=64", "--max_iters=2",
            "--eval_interval=2", "--eval_iters=1", "--device=cpu"]

    def train(self, *args, memory):
        env = dict(os.environ, FINEGPT_HOST_MEMORY=memory)
        return subprocess.run([FINEGPT, "train", *args], capture_output=True, text=True, env=env)

    def test_batch_size_auto_picks_what_fits(self):
        data = self.char_data()
        out = os.path.join(self.tmp, "out")
        p = self.train(f"--data_dir={data}", f"--out_dir={out}", "--batch_size='auto'",
                       "--tokens_per_step=4096", *self.TINY, memory="40MB")
        self.assertEqual(p.returncode, 0, p.stderr)
        m = re.search(r"micro-batch (\d+) x (\d+) accumulation", p.stdout)
        self.assertIsNotNone(m, p.stdout)
        b, a = int(m.group(1)), int(m.group(2))
        self.assertEqual(b * a * 64, 4096)
        self.assertLess(b, 64)  # 40 MB does not hold micro-batch 64
        more = self.train(f"--data_dir={data}", f"--out_dir={out}2", "--batch_size='auto'",
                          "--tokens_per_step=4096", *self.TINY, memory="4GB")
        self.assertIn("micro-batch 64 x 1", more.stdout)

    def test_too_big_stops_before_allocating(self):
        data = self.char_data()
        out = os.path.join(self.tmp, "out")
        p = self.train(f"--data_dir={data}", f"--out_dir={out}", "--batch_size=64", *self.TINY,
                       memory="30MB")
        self.assertCleanError(p, "needs", "available", "batch_size = ")
        self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    unittest.main()
