"""finegpt train from the command line: dry runs, training, exact resume, bad input."""
import json
import os
import random
import re
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from finegpt_testing import FINEGPT, CliTest, run, write_shard  # noqa: E402

# The guide's 24 GB config, verbatim (tests/config/test_config.cpp holds the text).
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs",
                       "fineweb_160M_guide.py")) as _f:
    GUIDE_CONFIG = _f.read()

TINY = """dataset = 'chars'
n_layer = 2
n_head = 2
n_embd = 32
block_size = 16
batch_size = 4
gradient_accumulation_steps = 2
learning_rate = 1e-3
warmup_iters = 2
lr_decay_iters = 20
min_lr = 1e-4
eval_interval = 10
eval_iters = 3
log_interval = 1
device = 'cpu'
compile = False
"""


def metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(l) for l in f]


class DryRun(CliTest):
    def test_guide_config_dry_runs_verbatim(self):
        cfg = self.write_config(GUIDE_CONFIG)
        p = run("train", cfg, "--dry_run", cwd=self.tmp)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout
        self.assertIn("n_layer = 10", out)
        # True parameter count: about 82M, not 160M.
        self.assertRegex(out, r"parameters: 81\d{6} \(81\.9\dM")
        self.assertIn("tokens per optimizer step: 524288", out)
        self.assertIn("memory plan", out)
        self.assertIn("logits", out)
        self.assertIn("compile", out)  # one note line saying what finegpt does instead
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "out-fineweb-160M")),
                         "a dry run must not create out_dir")


class Training(CliTest):
    def train(self, out, *extra):
        data = self.char_data()
        cfg = self.write_config(TINY)
        return run("train", cfg, f"--data_dir={data}", f"--out_dir={out}", *extra, cwd=self.tmp)

    def test_resume_is_bitwise_exact(self):
        straight = os.path.join(self.tmp, "straight")
        p = self.train(straight, "--max_iters=20")
        self.assertEqual(p.returncode, 0, p.stderr)
        half = os.path.join(self.tmp, "half")
        p = self.train(half, "--max_iters=10")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.train(half, "--max_iters=20", "--init_from=resume")
        self.assertEqual(p.returncode, 0, p.stderr)
        a = {m["iter"]: m["loss"] for m in metrics(straight) if "loss" in m}
        b = {}
        for m in metrics(half):  # the resumed run's records come last and win
            if "loss" in m:
                b[m["iter"]] = m["loss"]
        self.assertEqual(sorted(a), list(range(21)))
        for it in range(21):
            self.assertEqual(a[it], b[it], f"iter {it}: {a[it]} != {b[it]}")
        va = [m["val_loss"] for m in metrics(straight) if "val_loss" in m]
        vb = [m["val_loss"] for m in metrics(half) if "val_loss" in m]
        self.assertEqual(va[-1], vb[-1])
        self.assertLess(a[20], a[0])  # it learns

    def test_muon_trains_resumes_exactly_and_keeps_its_optimizer(self):
        # optimizer = 'muon': the plan holds its Newton-Schulz workspace, the run learns, resume
        # continues it bit for bit, and a resume that names the other optimizer is refused
        # before anything in out_dir changes.
        straight = os.path.join(self.tmp, "muon_straight")
        p = self.train(straight, "--max_iters=20", "--optimizer=muon", "--muon_lr=0.02")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("optimizer: muon", p.stdout)
        # The optimizer's memory: m and v over every stored parameter (fp32) and the workspace
        # of the largest matrix, fc (4C x C, C = 32): X and its successor, A and B (C x C).
        stored = int(re.search(r"(\d+) stored with vocabulary padding", p.stdout).group(1))
        C = 32
        want = 2 * 4 * stored + 4 * (2 * 4 * C * C + 2 * C * C)
        self.assertIn(f"  optimizer      {want / 1024:.2f} KiB", p.stdout)
        half = os.path.join(self.tmp, "muon_half")
        p = self.train(half, "--max_iters=10", "--optimizer=muon", "--muon_lr=0.02")
        self.assertEqual(p.returncode, 0, p.stderr)
        ckpt = os.path.join(half, "ckpt.bin")
        with open(ckpt, "rb") as f:
            before = f.read()
        p = self.train(half, "--max_iters=20", "--init_from=resume")  # optimizer 'adamw'
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("optimizer = 'muon'", p.stderr)
        self.assertIn("set optimizer = 'muon' to resume", p.stderr)
        with open(ckpt, "rb") as f:
            self.assertEqual(f.read(), before)
        p = self.train(half, "--max_iters=20", "--init_from=resume", "--optimizer=muon",
                       "--muon_lr=0.02")
        self.assertEqual(p.returncode, 0, p.stderr)
        a = {m["iter"]: m["loss"] for m in metrics(straight) if "loss" in m}
        b = {m["iter"]: m["loss"] for m in metrics(half) if "loss" in m}
        for it in range(21):
            self.assertEqual(a[it], b[it], f"iter {it}: {a[it]} != {b[it]}")
        self.assertLess(a[20], a[0])
        # And it is not AdamW under another name.
        adamw = os.path.join(self.tmp, "adamw")
        p = self.train(adamw, "--max_iters=20")
        self.assertEqual(p.returncode, 0, p.stderr)
        c = {m["iter"]: m["loss"] for m in metrics(adamw) if "loss" in m}
        self.assertEqual(a[0], c[0])
        self.assertNotEqual(a[20], c[20])

    def test_memory_line_accounts_for_the_peak(self):
        # The end-of-run line splits the peak resident set into the plan (the total the start-up
        # plan printed), the process before the model, and the rest: the parts add up.
        p = self.train(os.path.join(self.tmp, "mem"), "--max_iters=3")
        self.assertEqual(p.returncode, 0, p.stderr)
        units = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
        size = lambda v, u: float(v) * units[u]  # noqa: E731
        num = r"([\d.]+) (B|KiB|MiB|GiB)"
        m = re.search(rf"^memory: peak resident {num} = {num} planned \(parameters, gradients, "
                      rf"AdamW moments, activations\) \+ {num} before the model was built "
                      rf"\(program, libraries\) \+ (-?){num} other", p.stdout, re.M)
        self.assertIsNotNone(m, p.stdout)
        g = m.groups()
        peak, planned, before = size(*g[0:2]), size(*g[2:4]), size(*g[4:6])
        other = size(*g[7:9]) * (-1 if g[6] else 1)
        self.assertAlmostEqual(peak, planned + before + other, delta=0.03 * 2**20)
        total = re.search(rf"^  total\s+{num}", p.stdout, re.M)
        self.assertEqual(planned, size(*total.groups()))
        self.assertGreater(before, 1 * 2**20)  # the program and its libraries are not nothing

    def test_divergence_keeps_the_good_checkpoint(self):
        out = os.path.join(self.tmp, "div")
        p = self.train(out, "--max_iters=20", "--always_save_checkpoint=True")
        self.assertEqual(p.returncode, 0, p.stderr)
        good_eval = run("eval", f"--out_dir={out}", "--tokens=1024", "--batch_size=4", check=True)
        p = self.train(out, "--max_iters=200", "--init_from=resume", "--learning_rate=1e30",
                       "--grad_clip=0", "--decay_lr=False", "--always_save_checkpoint=True")
        msg = self.assertCleanError(p, "training diverged at iter", "is untouched",
                                    "learning_rate (now 1e+30)", "grad_clip = 1.0")
        self.assertRegex(msg, r"(the loss|the gradient norm|the val loss|the train loss) is "
                              r"(-?nan|-?inf)")
        self.assertRegex(msg, r"losses of the iters before: \d+: ")
        # What is on disk is the last good state, loadable, with the same loss as before.
        again = run("eval", f"--out_dir={out}", "--tokens=1024", "--batch_size=4", check=True)
        self.assertEqual(again.stdout, good_eval.stdout)
        run("eval", f"--init_from={out}/ckpt.prev.bin", "--tokens=1024", "--batch_size=4",
            check=True)
        self.assertNoPartialFiles(out)

    def test_sequential_order_and_dropout_train(self):
        out = os.path.join(self.tmp, "seq")
        p = self.train(out, "--max_iters=5", "--data_order=sequential", "--dropout=0.1")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len([m for m in metrics(out) if "loss" in m]), 6)


class Interrupted(CliTest):
    """SIGTERM / SIGINT at a random iteration: the step finishes, a checkpoint is written, the exit
    status is 128 + the signal, and a resumed run's losses equal an uninterrupted run's."""
    ITERS = 150

    def start(self, out, *extra):
        cfg = self.write_config(TINY)
        return subprocess.Popen([FINEGPT, "train", cfg, f"--data_dir={self.data}",
                                 f"--out_dir={out}", f"--max_iters={self.ITERS}",
                                 "--eval_interval=40", *extra], cwd=self.tmp,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def losses(self, out):
        d = {}
        for m in metrics(out):  # a resumed run's records come last and win
            if "loss" in m:
                d[m["iter"]] = m["loss"]
        return d

    def test_signal_saves_and_resume_is_exact(self):
        self.data = self.char_data()
        straight = os.path.join(self.tmp, "straight")
        p = self.start(straight)
        p.communicate()
        self.assertEqual(p.returncode, 0)
        want = self.losses(straight)
        rng = random.Random(20261204)
        for sig, status in [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGTERM, 143)]:
            at = rng.randrange(2, self.ITERS - 30)
            out = os.path.join(self.tmp, f"run_{sig}_{at}")
            p = self.start(out)
            for line in p.stdout:  # signal when iteration `at` is logged
                if line.startswith(f"iter {at}:"):
                    p.send_signal(sig)
                    break
            rest, err = p.communicate()
            self.assertEqual(p.returncode, status, err)
            m = re.search(r"^stopped by SIG(TERM|INT) after iter (\d+): (.*ckpt\.bin) holds the run",
                          rest, re.M)
            self.assertIsNotNone(m, rest)
            stopped = int(m.group(2))
            self.assertGreaterEqual(stopped, at)
            self.assertLess(stopped, self.ITERS)
            self.assertIn("interrupted: finishing this step", err)
            self.assertEqual(max(self.losses(out)), stopped)
            p = self.start(out, "--init_from=resume")
            _, err = p.communicate()
            self.assertEqual(p.returncode, 0, err)
            got = self.losses(out)
            self.assertEqual(sorted(got), list(range(self.ITERS + 1)))
            for it in range(self.ITERS + 1):
                self.assertEqual(got[it], want[it], f"{sig} at {at}: iter {it}")

    def test_second_sigint_stops_at_once(self):
        self.data = self.char_data()
        out = os.path.join(self.tmp, "twice")
        # Steps long enough (a wider model) that the second SIGINT lands before the first step
        # ends: the run stops at once, without saving.
        cfg = self.write_config(TINY)
        p = subprocess.Popen([FINEGPT, "train", cfg, f"--data_dir={self.data}", f"--out_dir={out}",
                              "--n_embd=512", "--n_head=8", "--block_size=256", "--batch_size=16",
                              "--max_iters=50"], cwd=self.tmp, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        for line in p.stdout:
            if line.startswith("iter 1:"):
                p.send_signal(signal.SIGINT)
            if "interrupted: finishing this step" in line:
                p.send_signal(signal.SIGINT)
                break
        rest, _ = p.communicate()
        self.assertEqual(p.returncode, 130, rest)
        self.assertIn("second interrupt: stopping now, without a checkpoint", rest)
        self.assertNotIn("stopped by", rest)


class BadInput(CliTest):
    def test_config_syntax_error(self):
        cfg = self.write_config("n_layer = 4\nbatch_size = = 3\n")
        self.assertCleanError(run("train", cfg, "--dry_run"), "config.py:2")

    def test_unknown_key_suggests(self):
        cfg = self.write_config("lerning_rate = 1e-3\n")
        self.assertCleanError(run("train", cfg, "--dry_run"), "config.py:1", "learning_rate")

    def test_unknown_flag_suggests(self):
        self.assertCleanError(run("train", "--n_layers=3", "--dry_run"), "n_layer")

    def test_wrong_type(self):
        cfg = self.write_config("n_layer = 'four'\n")
        self.assertCleanError(run("train", cfg, "--dry_run"), "n_layer")

    def test_embd_not_divisible(self):
        self.assertCleanError(run("train", "--n_embd=100", "--n_head=3", "--dry_run"), "n_embd")

    def test_config_encoding(self):
        # A UTF-8 byte-order mark is skipped, as Python does; a non-ASCII name is named.
        cfg = self.write_config("\ufeffn_layer = 3\n")
        p = run("train", cfg, "--dry_run", check=True)
        self.assertIn("n_layer = 3\n", p.stdout)
        cfg = self.write_config("n_lay\u00e9r = 3\n")
        self.assertCleanError(run("train", cfg, "--dry_run"), "config.py:1",
                              "non-ASCII character '\u00e9' outside a string")

    def test_integers_past_32_bits_are_refused(self):
        for key, value in [("batch_size", "2**32 + 4"), ("n_layer", "2**32 + 1"),
                           ("n_embd", "2**31"), ("block_size", "2**40"),
                           ("gradient_accumulation_steps", "2**33")]:
            cfg = self.write_config(f"{key} = {value}\n")
            self.assertCleanError(run("train", cfg, "--dry_run"), key, "past the largest value")

    def test_keys_without_effect_say_so(self):
        hw = os.cpu_count()
        p = run("train", "--device=cpu", "--threads=100000", "--tokens_per_step=4096",
                "--attention=cudnn", "--dry_run", check=True)
        self.assertIn(f"note: threads = 100000: this machine has {hw} hardware threads; "
                      f"using {hw}", p.stdout)
        self.assertIn(f"threads = {hw}\n", p.stdout)
        self.assertIn("note: tokens_per_step: used with batch_size = 'auto' only; ignored",
                      p.stdout)
        self.assertIn("note: attention = 'cudnn': a CUDA op", p.stdout)
        p = run("train", "--device=cpu", "--batch_size=auto", "--tokens_per_step=4096",
                "--dry_run", check=True)
        self.assertNotIn("note: tokens_per_step", p.stdout)

    def test_recompute_on_the_cpu(self):
        self.assertCleanError(run("train", "--device=cpu", "--recompute=1", "--dry_run"),
                              "recompute = 1", "CUDA")

    def test_missing_data(self):
        out = os.path.join(self.tmp, "out")
        p = run("train", f"--data_dir={self.tmp}/nowhere", f"--out_dir={out}", "--device=cpu",
                "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=2")
        self.assertCleanError(p, "nowhere")

    def test_block_size_larger_than_data(self):
        data = os.path.join(self.tmp, "small")
        os.makedirs(data)
        write_shard(os.path.join(data, "small_val_000000.bin"), list(range(10)))
        write_shard(os.path.join(data, "small_train_000001.bin"), list(range(10)))
        p = run("train", f"--data_dir={data}", f"--out_dir={self.tmp}/o", "--block_size=64",
                "--n_layer=1", "--n_head=1", "--n_embd=8", "--vocab_size=16")
        self.assertCleanError(p, "block_size")

    def test_bad_shard_magic(self):
        data = os.path.join(self.tmp, "bad")
        os.makedirs(data)
        write_shard(os.path.join(data, "bad_val_000000.bin"), list(range(100)))
        path = os.path.join(data, "bad_train_000001.bin")
        write_shard(path, list(range(100)))
        with open(path, "r+b") as f:
            f.write(b"\x00\x00\x00\x00")
        p = run("train", f"--data_dir={data}", f"--out_dir={self.tmp}/o", "--block_size=8",
                "--n_layer=1", "--n_head=1", "--n_embd=8", "--vocab_size=128")
        self.assertCleanError(p, "bad_train_000001.bin", "magic")

    def test_shard_count_disagrees_with_size(self):
        data = os.path.join(self.tmp, "bad")
        os.makedirs(data)
        write_shard(os.path.join(data, "bad_val_000000.bin"), list(range(100)))
        path = os.path.join(data, "bad_train_000001.bin")
        write_shard(path, list(range(100)))
        with open(path, "r+b") as f:
            f.truncate(1024 + 150)
        p = run("train", f"--data_dir={data}", f"--out_dir={self.tmp}/o", "--block_size=8",
                "--n_layer=1", "--n_head=1", "--n_embd=8", "--vocab_size=128")
        self.assertCleanError(p, "bad_train_000001.bin")

    def test_unwritable_out_dir(self):
        data = self.char_data()
        blocker = os.path.join(self.tmp, "file")
        open(blocker, "w").close()
        cfg = self.write_config(TINY)
        p = run("train", cfg, f"--data_dir={data}", f"--out_dir={blocker}/out", "--max_iters=1")
        self.assertCleanError(p, f"{blocker}/out")

    def test_truncated_checkpoint_on_resume(self):
        data = self.char_data()
        cfg = self.write_config(TINY)
        out = os.path.join(self.tmp, "out")
        run("train", cfg, f"--data_dir={data}", f"--out_dir={out}", "--max_iters=10", check=True)
        ckpt = os.path.join(out, "ckpt.bin")
        size = os.path.getsize(ckpt)
        with open(ckpt, "r+b") as f:
            f.truncate(size - 100)
        p = run("train", cfg, f"--data_dir={data}", f"--out_dir={out}", "--init_from=resume")
        self.assertCleanError(p, "ckpt.bin", "truncated")
        self.assertNoPartialFiles(out)

    def test_foreign_checkpoint(self):
        out = os.path.join(self.tmp, "out")
        os.makedirs(out)
        with open(os.path.join(out, "ckpt.bin"), "wb") as f:
            f.write(b"PK\x03\x04 this is a zip file, not a checkpoint" * 10)
        p = run("train", f"--out_dir={out}", "--init_from=resume", "--dry_run")
        self.assertCleanError(p, "ckpt.bin", "not a finegpt checkpoint")
        p = run("sample", f"--out_dir={out}")
        self.assertCleanError(p, "ckpt.bin")


if __name__ == "__main__":
    unittest.main()
