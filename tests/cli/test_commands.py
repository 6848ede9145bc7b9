"""Every subcommand: --help, info, sample and eval from a trained model, and their bad flags."""
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from finegpt_testing import SHAKESPEARE as SHAKESPEARE_PATH  # noqa: E402
from finegpt_testing import CliTest, read, run  # noqa: E402

COMMANDS = ["train", "sample", "eval", "prepare", "export", "bench", "info", "tokenize", "detokenize",
            "download"]


class Help(CliTest):
    def test_every_subcommand_has_help(self):
        for cmd in COMMANDS:
            p = run(cmd, "--help")
            self.assertEqual(p.returncode, 0, f"{cmd} --help: {p.stderr}")
            self.assertIn("usage: finegpt " + cmd, p.stdout)

    def test_top_level(self):
        p = run("--help")
        self.assertEqual(p.returncode, 0)
        for cmd in COMMANDS:
            self.assertIn(cmd, p.stdout)
        self.assertCleanError(run("trian"), "trian")

    def test_info(self):
        p = run("info", check=True)
        for word in ("backends:", "blas:", "threads:", "devices:"):
            self.assertIn(word, p.stdout)
        self.assertCleanError(run("info", "--verbose"), "--verbose")


class TrainedModel(CliTest):
    """A small char model trained in setUp (n_embd 32; 64 gives the CUDA attention's smallest
    head size, 32)."""
    n_embd, iters = 32, 60

    def setUp(self):
        super().setUp()
        self.data = self.char_data()
        self.out = os.path.join(self.tmp, "out")
        run("train", f"--data_dir={self.data}", f"--out_dir={self.out}", "--n_layer=2",
            "--n_head=2", f"--n_embd={self.n_embd}", "--block_size=32", "--batch_size=8",
            "--gradient_accumulation_steps=1", f"--max_iters={self.iters}",
            f"--eval_interval={self.iters}", "--eval_iters=2", "--learning_rate=3e-3",
            "--warmup_iters=5", f"--lr_decay_iters={self.iters}", check=True)


class TrainedModelTests(TrainedModel):

    def test_sample(self):
        p = run("sample", f"--out_dir={self.out}", "--start=ROMEO:", "--num_samples=3",
                "--max_new_tokens=50", "--seed=7", check=True)
        samples = [s for s in p.stdout.split("---------------\n") if s.strip()]
        self.assertEqual(len(samples), 3)
        for s in samples:
            self.assertTrue(s.startswith("ROMEO:"))
            self.assertEqual(len(s), len("ROMEO:") + 50 + 1)  # start, 50 characters, newline
        again = run("sample", f"--out_dir={self.out}", "--start=ROMEO:", "--num_samples=3",
                    "--max_new_tokens=50", "--seed=7", check=True)
        self.assertEqual(p.stdout, again.stdout)  # seeded: reproducible
        prompt = os.path.join(self.tmp, "prompt.txt")
        with open(prompt, "w") as f:
            f.write("JULIET:\n")
        p = run("sample", f"--out_dir={self.out}", f"--start=FILE:{prompt}", "--num_samples=1",
                "--max_new_tokens=40", check=True)  # past block_size 32: the context is cropped
        self.assertTrue(p.stdout.startswith("JULIET:\n"))

    def test_eval_is_deterministic_and_checks_its_range(self):
        a = run("eval", f"--out_dir={self.out}", "--tokens=8192", "--batch_size=8", check=True)
        b = run("eval", f"--out_dir={self.out}", "--tokens=8192", "--batch_size=8", check=True)
        self.assertEqual(a.stdout, b.stdout)
        loss = float(a.stdout.split("loss ")[-1])
        self.assertLess(loss, 4.0)  # better than uniform over 65 characters (4.17)
        self.assertCleanError(run("eval", f"--out_dir={self.out}", "--tokens=100000000"),
                              "--tokens")
        self.assertCleanError(run("eval", f"--out_dir={self.out}", "--tokens=1000"), "multiple")

    def test_corrupted_checkpoint_is_named(self):
        # Two flipped bytes anywhere (header, parameters, moments) are found on load; eval,
        # sample, export and resume refuse the file, naming it.
        ckpt = os.path.join(self.out, "ckpt.bin")
        good = read(ckpt)
        with open(ckpt, "rb") as f:
            f.seek(8)
            header_len = int.from_bytes(f.read(8), "little")
        params_at = (16 + header_len + 63) // 64 * 64
        moments_at = params_at + (len(good) - 16 - params_at) // 3
        for where, part in [(len(good) // 2, "optimizer state"), (params_at + 1001, "parameters"),
                            (20 + header_len // 2, "header"), (moments_at + 7, "optimizer state")]:
            bad = bytearray(good)
            bad[where] ^= 0x10
            bad[where + 1] ^= 0x01
            with open(ckpt, "wb") as f:
                f.write(bad)
            cmds = [("train", f"--data_dir={self.data}", f"--out_dir={self.out}",
                     "--init_from=resume", "--max_iters=70", "--n_layer=2", "--n_head=2",
                     "--n_embd=32", "--block_size=32")]
            if part != "optimizer state":  # eval, sample and export read no moments
                cmds += [("eval", f"--out_dir={self.out}", "--tokens=8192"),
                         ("sample", f"--out_dir={self.out}", "--max_new_tokens=5"),
                         ("export", f"--out_dir={self.out}", f"--output={self.tmp}/m.bin")]
            for c in cmds:
                p = run(*c)
                self.assertNotEqual(p.returncode, 0, f"{where}: {c[0]} read a corrupt file")
                msg = self.assertCleanError(p, ckpt)
                self.assertTrue("checksum" in msg or "corrupt" in msg, msg)
                if part != "header":
                    self.assertIn(f"the {part} fail", msg)
            self.assertFalse(os.path.exists(f"{self.tmp}/m.bin"))
        with open(ckpt, "wb") as f:
            f.write(good)
        run("eval", f"--out_dir={self.out}", "--tokens=8192", check=True)

    def test_export_never_replaces_its_input_or_a_special_file(self):
        ckpt = os.path.join(self.out, "ckpt.bin")
        before = read(ckpt)
        self.assertCleanError(run("export", f"--out_dir={self.out}", f"--output={ckpt}"),
                              "is the file being exported")
        link = os.path.join(self.tmp, "link.bin")
        os.symlink(ckpt, link)
        self.assertCleanError(run("export", f"--out_dir={self.out}", f"--output={link}"),
                              "is the file being exported")
        self.assertEqual(read(ckpt), before)
        self.assertCleanError(run("export", f"--out_dir={self.out}", "--output=/dev/null"),
                              "/dev/null", "not a regular file")
        os.makedirs(os.path.join(self.tmp, "adir"))
        self.assertCleanError(run("export", f"--out_dir={self.out}", f"--output={self.tmp}/adir"),
                              "a folder")
        # Through a symbolic link to another file: the target is written, the link stays.
        target = os.path.join(self.tmp, "model.bin")
        with open(target, "wb") as f:
            f.write(b"old")
        to_target = os.path.join(self.tmp, "to_model.bin")
        os.symlink(target, to_target)
        run("export", f"--out_dir={self.out}", f"--output={to_target}", check=True)
        self.assertTrue(os.path.islink(to_target))
        self.assertEqual(read(target)[:4], (20240326).to_bytes(4, "little"))
        self.assertEqual(sorted(os.listdir(self.tmp)).count("model.bin"), 1)
        self.assertNoPartialFiles(self.tmp)

    def test_sample_tokenizer_must_match_the_model(self):
        self.assertCleanError(run("sample", f"--out_dir={self.out}", "--tokenizer=gpt2"),
                              "50257", "65")

    def test_bad_sample_flags(self):
        self.assertCleanError(run("sample", f"--out_dir={self.out}", "--top_k=-1"), "--top_k")
        self.assertCleanError(run("sample", f"--out_dir={self.out}", "--num_samples=two"),
                              "--num_samples")
        self.assertCleanError(run("sample", f"--out_dir={self.out}", "--temprature=0.5"),
                              "temperature")
        self.assertCleanError(run("sample", f"--out_dir={self.out}", "--start=\u00e9t\u00e9"),
                              "vocabulary")
        self.assertCleanError(run("sample", f"--out_dir={self.tmp}/nothing"), "nothing")


EMULATED = os.environ.get("FINEGPT_EMULATED_BIN", "")


@unittest.skipUnless(EMULATED and os.path.exists(EMULATED),
                     "needs finegpt_emulated (the CUDA seam emulated on the host)")
class CudaEngineCommands(TrainedModel):
    """eval and sample with --device cuda go through the same engine as training: on the CUDA
    seam emulated on the host (bf16 storage), a model trained on the CPU evaluates to the CPU's
    loss within bf16's error, and samples as the CPU does."""
    n_embd, iters = 64, 40

    def emulated(self, *args):
        p = subprocess.run([EMULATED, *args], capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p.stdout

    def test_eval_on_cuda_matches_cpu(self):
        args = ["eval", f"--out_dir={self.out}", "--tokens=2048", "--batch_size=4"]
        loss = lambda out: float(re.search(r"loss ([0-9.]+)", out).group(1))
        cpu = loss(run(*args, check=True).stdout)
        gpu = loss(self.emulated(*args, "--device=cuda"))
        self.assertLess(cpu, 3.5)  # it learned something: the comparison means something
        self.assertAlmostEqual(gpu, cpu, delta=0.02 * cpu)
        self.assertNotEqual(gpu, cpu)  # bf16 on the emulated device, not the CPU engine again

    def test_sample_on_cuda(self):
        args = ["sample", f"--out_dir={self.out}", "--start=ROMEO:", "--num_samples=2",
                "--max_new_tokens=40", "--seed=7"]  # past block_size 32: the context is cropped
        out = self.emulated(*args, "--device=cuda")
        samples = [s for s in out.split("---------------\n") if s.strip()]
        self.assertEqual(len(samples), 2)
        for s in samples:
            self.assertTrue(s.startswith("ROMEO:"))
            self.assertEqual(len(s), len("ROMEO:") + 40 + 1)
        self.assertEqual(out, self.emulated(*args, "--device=cuda"))  # seeded: reproducible
        # Greedy decoding: the CPU's KV cache and the device's full forward agree on the first
        # characters (bf16 may part them later, at a near tie).
        greedy = ["sample", f"--out_dir={self.out}", "--start=ROMEO:", "--num_samples=1",
                  "--max_new_tokens=8", "--top_k=1"]
        self.assertEqual(run(*greedy, check=True).stdout[:10],
                         self.emulated(*greedy, "--device=cuda")[:10])

    def test_bad_device(self):
        for cmd in ("sample", "eval"):
            self.assertCleanError(run(cmd, f"--out_dir={self.out}", "--device=tpu"), "--device")


class HostileInput(CliTest):
    def test_folders_and_zero_limits(self):
        self.assertCleanError(run("tokenize", self.tmp), self.tmp, "is a folder")
        self.assertCleanError(run("detokenize", self.tmp), self.tmp, "is a folder")
        out = os.path.join(self.tmp, "o")
        for flag in ("--max-tokens", "--max-docs"):
            self.assertCleanError(run("prepare", "--input", SHAKESPEARE_PATH, "--out", out, flag,
                                      "0"), flag, "at least 1")
        self.assertFalse(os.path.exists(out))

    def test_prepare_never_writes_where_it_reads(self):
        folder = os.path.join(self.tmp, "texts")
        os.makedirs(folder)
        doc = os.path.join(folder, "a.txt")
        with open(doc, "w") as f:
            f.write("Some text to tokenize.\n")
        for tok in ("gpt2", "char"):
            for args in (["--input", folder, "--out", folder],
                         ["--input", doc, "--out", folder, "--overwrite"],
                         ["--input", doc, "--out", os.path.join(folder, "..", "texts")]):
                self.assertCleanError(run("prepare", "--tokenizer", tok, *args), "is inside --out")
            self.assertEqual(os.listdir(folder), ["a.txt"])

    def test_val_only_prepare_says_so(self):
        out = os.path.join(self.tmp, "v")
        p = run("prepare", "--input", SHAKESPEARE_PATH, "--out", out, "--val-tokens", "10M",
                "--quiet", check=True)
        self.assertIn("train: none: every token went to the val split (--val-tokens 10000000)",
                      p.stdout)
        self.assertIn("warning: no train shard written", p.stderr)
        p = run("prepare", "--input", SHAKESPEARE_PATH, "--out", out + "2", "--val-tokens",
                "1000", "--quiet", check=True)
        self.assertNotIn("warning", p.stderr)


class Gpt2Model(CliTest):
    def test_sample_with_gpt2_tokens(self):
        text = os.path.join(self.tmp, "doc.txt")
        with open(SHAKESPEARE_PATH) as f, open(text, "w") as g:
            g.write(f.read()[:200000])
        data = os.path.join(self.tmp, "gpt2data")
        run("prepare", "--input", text, "--out", data, "--name", "shk", "--shard-tokens",
            "20000", check=True)
        out = os.path.join(self.tmp, "out")
        run("train", f"--data_dir={data}", f"--out_dir={out}", "--n_layer=1", "--n_head=2",
            "--n_embd=32", "--block_size=16", "--batch_size=4", "--gradient_accumulation_steps=1",
            "--max_iters=10", "--eval_interval=10", "--eval_iters=1", "--device=cpu", check=True)
        p = run("sample", f"--out_dir={out}", "--start=To be", "--num_samples=1",
                "--max_new_tokens=20", check=True)
        self.assertTrue(p.stdout.startswith("To be"), p.stdout)


if __name__ == "__main__":
    unittest.main()


class Bench(CliTest):
    TINY = ["--n_layer=1", "--n_head=2", "--n_embd=64", "--vocab_size=100", "--block_size=32",
            "--batch_size=2", "--seq_len=32", "--steps=2", "--warmup=0", "--threads=1"]

    def test_cpu_run_reports_a_median(self):
        p = run("bench", *self.TINY, check=True)
        self.assertIn('"step_ms_median"', p.stdout)

    def test_cuda_without_a_device_is_a_skip(self):
        p = run("info", check=True)
        if "0: " in p.stdout.split("devices:")[-1]:
            self.skipTest("a CUDA device is present")
        p = run("bench", *self.TINY, "--device=cuda", check=True)
        self.assertIn("no CUDA device: skipped", p.stdout)

    def test_bad_flags(self):
        self.assertCleanError(run("bench", *self.TINY, "--device=tpu"), "--device")
        self.assertCleanError(run("bench", *self.TINY, "--steps=0"), "--steps")
        self.assertCleanError(run("bench", *self.TINY, "--recompute=4"), "--recompute")
        self.assertCleanError(run("bench", *self.TINY, "--recompute=1"), "--recompute", "cuda")
        self.assertCleanError(run("bench", *self.TINY, "--attention=flash"), "--attention")
        self.assertCleanError(run("bench", *self.TINY, "--attention=cudnn"), "--attention", "cuda")
