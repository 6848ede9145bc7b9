"""Training you can watch: the TensorBoard event files read back with TensorBoard's own reader
(against metrics.jsonl, the printed log and nanoGPT's learning-rate schedule), a resume that goes
back, a killed run, the progress line's ETA, the wandb_log note, and `finegpt report`'s page
rendered by headless Chromium and looked at pixel by pixel."""
import glob
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from finegpt_testing import FINEGPT, SHAKESPEARE, CliTest, run  # noqa: E402

TINY = ["--dataset=chars", "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=16",
        "--batch_size=4", "--gradient_accumulation_steps=2", "--learning_rate=1e-3",
        "--warmup_iters=2", "--lr_decay_iters=20", "--min_lr=1e-4", "--eval_interval=10",
        "--eval_iters=3", "--log_interval=1", "--device=cpu", "--compile=False"]
TOKENS_PER_STEP = 2 * 4 * 16
STEP_FIELDS = {"loss", "loss_mean", "ms", "tok_per_s", "mfu", "lr", "grad_norm", "comm_ms",
               "memory_mib"}
EVAL_FIELDS = {"train_loss", "val_loss"}
LINE = re.compile(r"^iter (\d+): loss ([\d.]+), time [\d.]+ms, tok/s \d+, lr ([\d.e+-]+), "
                  r"norm ([\d.]+), (\d+)/(\d+) \((\d+)%\), eta (\S+)$")
# The report's series colours (src/train/report.cpp).
COLOURS = {"train loss": (0x1f, 0x77, 0xb4), "val loss": (0xd6, 0x27, 0x28),
           "lr": (0x2c, 0xa0, 0x2c), "grad norm": (0x94, 0x67, 0xbd),
           "tokens/s": (0xff, 0x7f, 0x0e), "memory": (0x8c, 0x56, 0x4b)}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def nanogpt_lr(it, lr=1e-3, min_lr=1e-4, warmup=2, decay=20):
    """nanoGPT's get_lr, written out here."""
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay:
        return min_lr
    ratio = (it - warmup) / (decay - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def jsonl_as_tensorboard_keeps_it(out_dir):
    """{field: {iter: value}} from metrics.jsonl: a resume marker at iter k drops the earlier
    records at iters >= k (TensorBoard's SessionLog.START purge), later records win."""
    rows = []
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("resumed"):
                rows = [x for x in rows if x["iter"] < r["iter"]]
            else:
                rows.append(r)
    out = {}
    for r in rows:
        for k, v in r.items():
            if k not in ("iter", "tokens"):
                out.setdefault(k, {})[r["iter"]] = v
    return out


def tensorboard_scalars(out_dir):
    """{tag: {step: value}} as TensorBoard's EventAccumulator reads the folder."""
    acc = event_accumulator.EventAccumulator(out_dir, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        steps = [e.step for e in events]
        assert len(steps) == len(set(steps)), f"{tag}: a step twice: {steps}"
        out[tag] = {e.step: e.value for e in events}
    return out


class Watch(CliTest):
    @classmethod
    def setUpClass(cls):
        cls._shared = tempfile.TemporaryDirectory()
        cls.data = os.path.join(cls._shared.name, "chars")
        run("prepare", "--tokenizer", "char", "--input", SHAKESPEARE, "--out", cls.data,
            "--quiet", check=True)

    @classmethod
    def tearDownClass(cls):
        cls._shared.cleanup()

    def train(self, out, *extra, check=True):
        p = run("train", f"--data_dir={self.data}", f"--out_dir={out}", *TINY, *extra, cwd=self.tmp)
        if check:
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p

    def assertSameAsJsonl(self, out):
        want, got = jsonl_as_tensorboard_keeps_it(out), tensorboard_scalars(out)
        self.assertEqual(set(got), set(want))
        for tag, by_step in want.items():
            self.assertEqual(sorted(got[tag]), sorted(by_step), tag)
            for step, v in by_step.items():
                self.assertEqual(got[tag][step], np.float32(v), f"{tag} at {step}")
        return got

    def test_event_files_hold_the_runs_scalars(self):
        out = os.path.join(self.tmp, "out")
        p = self.train(out, "--max_iters=15")
        tb = self.assertSameAsJsonl(out)
        self.assertEqual(set(tb), STEP_FIELDS | EVAL_FIELDS)
        self.assertEqual(sorted(tb["loss"]), list(range(16)))
        self.assertEqual(sorted(tb["val_loss"]), [0, 10])
        # The tags carry what the log line prints, and the lr nanoGPT's schedule gives.
        lines = [LINE.match(l) for l in p.stdout.splitlines() if l.startswith("iter ")]
        self.assertEqual(len(lines), 16, p.stdout)
        for m in lines:
            it = int(m.group(1))
            self.assertAlmostEqual(tb["loss"][it], float(m.group(2)), delta=6e-5)
            self.assertAlmostEqual(tb["lr"][it], float(m.group(3)), delta=1e-3 * float(m.group(3)))
            self.assertAlmostEqual(tb["grad_norm"][it], float(m.group(4)), delta=6e-5)
            self.assertAlmostEqual(tb["lr"][it], nanogpt_lr(it), delta=1e-6 * nanogpt_lr(it))
        # Memory in use: the resident set in MiB, never above the peak the end-of-run line gives
        # (VmHWM), and most of it by the end.
        units = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
        peak = re.search(r"^memory: peak resident ([\d.]+) (B|KiB|MiB|GiB)", p.stdout, re.M)
        peak_mib = float(peak.group(1)) * units[peak.group(2)] / 2**20
        for v in tb["memory_mib"].values():
            self.assertGreater(v, 5)
            self.assertLessEqual(v, peak_mib * 1.01)
        self.assertGreater(tb["memory_mib"][15], 0.5 * peak_mib)
        self.assertTrue(all(v == 0 for v in tb["mfu"].values()))  # no peak known on a CPU
        with open(os.path.join(out, "metrics.jsonl")) as f:
            rows = [json.loads(l) for l in f]
        for r in rows:  # tokens: after the step; an evaluation's, before it
            self.assertEqual(r["tokens"], (r["iter"] + ("loss" in r)) * TOKENS_PER_STEP)
        # run.json: the config as resolved and the memory plan train printed.
        with open(os.path.join(out, "run.json")) as f:
            info = json.load(f)
        self.assertEqual(dict(info["config"])["n_layer"], "2")
        self.assertEqual(dict(info["config"])["out_dir"], repr(out))
        self.assertEqual(info["tokens_per_step"], TOKENS_PER_STEP)
        total = re.search(r"^  total\s+(.*)$", p.stdout, re.M).group(1).strip()
        planned = sum(b["bytes"] for b in info["memory_plan"])
        num, unit = total.split()
        self.assertAlmostEqual(planned, float(num) * units[unit], delta=0.01 * units[unit])

    def test_a_resume_that_goes_back_replaces_the_steps_it_repeats(self):
        out = os.path.join(self.tmp, "out")
        self.train(out, "--max_iters=15")  # checkpoint at 10, steps to 15
        self.train(out, "--max_iters=12", "--init_from=resume", "--learning_rate=5e-4")
        self.assertEqual(len(glob.glob(os.path.join(out, "events.out.tfevents.*"))), 2)
        tb = self.assertSameAsJsonl(out)
        self.assertEqual(sorted(tb["loss"]), list(range(13)))  # 13..15 of the first run dropped
        # The resumed steps are the second run's (its lower learning rate), the rest the first's.
        self.assertAlmostEqual(tb["lr"][11], nanogpt_lr(11, lr=5e-4, min_lr=1e-4), delta=1e-9)
        self.assertAlmostEqual(tb["lr"][9], nanogpt_lr(9), delta=1e-9)

    def test_a_fresh_run_replaces_an_earlier_one_in_the_folder(self):
        out = os.path.join(self.tmp, "out")
        self.train(out, "--max_iters=8")
        self.train(out, "--max_iters=5", "--learning_rate=5e-4")
        self.assertEqual(len(glob.glob(os.path.join(out, "events.out.tfevents.*"))), 2)
        tb = self.assertSameAsJsonl(out)  # metrics.jsonl holds the second run alone
        self.assertEqual(sorted(tb["loss"]), list(range(6)))
        self.assertAlmostEqual(tb["lr"][4], nanogpt_lr(4, lr=5e-4, min_lr=1e-4), delta=1e-9)

    def test_a_killed_run_keeps_its_events(self):
        out = os.path.join(self.tmp, "out")
        p = subprocess.Popen([FINEGPT, "train", f"--data_dir={self.data}", f"--out_dir={out}",
                              *TINY, "--max_iters=100000"], cwd=self.tmp, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        for line in p.stdout:
            if line.startswith("iter 7:"):
                p.send_signal(signal.SIGKILL)
                break
        p.communicate()
        tb = self.assertSameAsJsonl(out)
        self.assertGreaterEqual(max(tb["loss"]), 7)

    def test_progress_line_counts_to_max_iters(self):
        p = self.train(os.path.join(self.tmp, "out"), "--max_iters=12")
        lines = [l for l in p.stdout.splitlines() if l.startswith("iter ")]
        self.assertEqual(len(lines), 13)
        for l in lines:
            m = LINE.match(l)
            self.assertIsNotNone(m, l)
            it, done, total, pct = (int(m.group(i)) for i in (1, 5, 6, 7))
            self.assertEqual((done, total), (it + 1, 13))
            self.assertEqual(pct, round(100 * (it + 1) / 13))
            self.assertRegex(m.group(8), r"^(\d+s|\d+m\d\ds|\d+h\d\dm|\d+d\d\dh)$")
        self.assertTrue(lines[-1].endswith("13/13 (100%), eta 0s"), lines[-1])

    def test_wandb_log_says_how_to_send_the_event_files(self):
        out = os.path.join(self.tmp, "out")
        p = self.train(out, "--max_iters=1", "--wandb_log=True", "--wandb_project=finegpt-tests")
        self.assertIn("note: wandb_log: finegpt does not talk to Weights & Biases itself; to send "
                      "it the run's TensorBoard event files: wandb sync --sync-tensorboard "
                      f"--project finegpt-tests {out}\n", p.stdout)
        self.assertEqual(len(glob.glob(os.path.join(out, "events.out.tfevents.*"))), 1)


def screenshot(html, png):
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--force-device-scale-factor=1", f"--screenshot={png}",
                    "--window-size=1200,2000", "file://" + os.path.abspath(html)],
                   check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(png).convert("RGB")).astype(int)


def pixels_of(img, colour, tol=8):
    """(ys, xs) of the pixels within tol of colour on every channel."""
    return np.nonzero(np.all(np.abs(img - np.array(colour)) <= tol, axis=2))


class Report(CliTest):
    @classmethod
    def setUpClass(cls):
        cls._shared = tempfile.TemporaryDirectory()
        root = cls._shared.name
        cls.data = os.path.join(root, "chars")
        run("prepare", "--tokenizer", "char", "--input", SHAKESPEARE, "--out", cls.data,
            "--quiet", check=True)
        cls.run_dir, cls.eval_only = os.path.join(root, "run"), os.path.join(root, "eval_only")
        for out, extra in ((cls.run_dir, ["--max_iters=40", "--eval_interval=10"]),
                           (cls.eval_only, ["--max_iters=40", "--eval_only=True"])):
            run("train", f"--data_dir={cls.data}", f"--out_dir={out}", *TINY, *extra, check=True)

    @classmethod
    def tearDownClass(cls):
        cls._shared.cleanup()

    def report(self, out_dir, *extra):
        p = run("report", out_dir, *extra)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p

    def test_page_is_self_contained(self):
        out = os.path.join(self.tmp, "page.html")
        p = self.report(self.run_dir, f"--output={out}")
        self.assertEqual(p.stdout, f"wrote {out}\n")
        with open(out, encoding="utf-8") as f:
            html = f.read()
        self.assertNotRegex(html, r"(?i)<script|<link|<img|<iframe|@import|url\(|https?:")
        for title in ("Loss", "Learning rate", "Gradient norm", "Throughput", "Memory in use",
                      "Configuration", "Memory plan"):
            self.assertIn(title, html)
        self.assertIn("<td>n_layer</td><td class=\"code\">2</td>", html)
        self.assertNotIn("Model FLOPs utilization", html)  # no MFU on a CPU

    def test_default_output_is_in_the_run_folder(self):
        out_dir = os.path.join(self.tmp, "run")
        shutil.copytree(self.run_dir, out_dir)
        p = self.report(out_dir)
        self.assertEqual(p.stdout, f"wrote {out_dir}/report.html\n")
        self.assertTrue(os.path.isfile(os.path.join(out_dir, "report.html")))

    @unittest.skipIf(CHROMIUM is None, "chromium is not installed (scripts/setup.sh installs it)")
    def test_chromium_shows_the_plots(self):
        page, empty = os.path.join(self.tmp, "page.html"), os.path.join(self.tmp, "empty.html")
        self.report(self.run_dir, f"--output={page}")
        self.report(self.eval_only, f"--output={empty}")
        img = screenshot(page, os.path.join(self.tmp, "page.png"))
        blank = screenshot(empty, os.path.join(self.tmp, "empty.png"))
        for name, colour in COLOURS.items():
            ys, xs = pixels_of(img, colour)
            # A line across its plot: many pixels, spanning most of a 470-pixel plot area.
            self.assertGreater(len(xs), 150, f"{name}: {len(xs)} pixels")
            self.assertGreater(xs.max() - xs.min(), 300, name)
            if name == "val loss":
                continue  # an eval_only run has one val loss point
            self.assertLess(len(pixels_of(blank, colour)[0]), 5, f"{name} drawn without data")
        # The loss goes down from left to right (screen y grows downwards).
        ys, xs = pixels_of(img, COLOURS["train loss"])
        left, right = ys[xs < xs.min() + 40], ys[xs > xs.max() - 40]
        self.assertLess(left.mean() + 20, right.mean())
        # The learning rate warms up, then decays: its highest point (smallest y) is left of centre.
        ys, xs = pixels_of(img, COLOURS["lr"])
        top = xs[ys == ys.min()]
        self.assertLess(top.mean(), xs.min() + 0.25 * (xs.max() - xs.min()))


if __name__ == "__main__":
    unittest.main()
