"""finegpt eval --hellaswag against a PyTorch implementation of the same scoring, written here
from the description of Karpathy's hellaswag.py (llm.c, build-nanogpt): the context tokenized
alone, each ending as " " + ending (tiktoken's GPT-2 encoding), four rows context + ending; each
ending's cross-entropy over its own tokens only, each predicted from the position before it;
acc_norm by the lowest mean over the ending's tokens, acc by the lowest sum. The model is a small
GPT-2-vocabulary GPT (tests/e2e/torch_reference.py) run in float64 from the float32 weights
finegpt reads. Rows past the block are cropped from the left (lm-evaluation-harness's rule).

The fixture, hellaswag_fixture.jsonl, is in HellaSwag's public format but its sentences were
written for finegpt's tests (no text from the dataset). The emulated CUDA engine
(finegpt_emulated: the CUDA seam on the host, bf16) is held to the CPU's losses within bf16's
error."""
import json
import os
import subprocess
import sys
import unittest

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from finegpt_testing import FINEGPT, ROOT, CliTest, run  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import torch_reference as tr  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hellaswag_fixture.jsonl")
EMULATED = os.environ.get("FINEGPT_EMULATED_BIN", "")
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
L, NH, C, V, BLOCK = 2, 2, 64, 50257, 64  # head size 32: the CUDA attention's smallest

# tiktoken lives in the project's .venv (numpy 2); this file runs on Debian's python3 with torch.
TOKENIZE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from prepare_testing import tiktoken_gpt2
enc = tiktoken_gpt2()
out = []
for line in open(sys.argv[2], encoding="utf-8"):
    if line.strip():
        ex = json.loads(line)
        out.append({"ctx": enc.encode_ordinary(ex["ctx"]), "label": ex["label"],
                    "ends": [enc.encode_ordinary(" " + e) for e in ex["endings"]]})
print(json.dumps(out))
"""


def tiktoken_examples(path):
    p = subprocess.run([VENV_PYTHON, "-c", TOKENIZE, os.path.join(ROOT, "tests", "data"), path],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise unittest.SkipTest(f"tiktoken from {VENV_PYTHON} is needed: {p.stderr[-300:]}")
    return json.loads(p.stdout)


def reference_scores(model, examples, block):
    """Per example: sum and mean loss of each ending, its token count, and both choices."""
    out = []
    with torch.no_grad():
        for ex in examples:
            sums, means, counts, cropped = [], [], [], False
            for end in ex["ends"]:
                row = ex["ctx"] + end
                start = len(ex["ctx"])  # index of the ending's first token in row
                if len(row) > block + 1:  # keep the last block + 1 tokens (the last: a target)
                    cut = len(row) - (block + 1)
                    row, start, cropped = row[cut:], start - cut, True
                t = torch.tensor([row], dtype=torch.long)
                # hellaswag.py runs the whole row and drops the last position's logits; a row
                # of block + 1 tokens can only run without its last token (the same logits).
                logits = model(t if len(row) <= block else t[:, :-1])[0][0, :len(row) - 1]
                losses = F.cross_entropy(logits[:, :V], t[0, 1:], reduction="none")
                ending = losses[start - 1:]  # position p predicts token p + 1
                sums.append(float(ending.sum()))
                means.append(float(ending.mean()))
                counts.append(len(end))
            out.append({"sum": sums, "mean": means, "tokens": counts, "label": ex["label"],
                        "pred": int(np.argmin(sums)), "pred_norm": int(np.argmin(means)),
                        "cropped": cropped})
    return out


def write_llmc(path, flat, T):
    header = np.zeros(256, dtype=np.int32)
    header[:8] = [20240326, 3, T, V, L, NH, C, tr.padded_vocab(V)]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(flat, np.float32).tobytes())


def margin(values):
    s = sorted(values)
    return s[1] - s[0]


class Hellaswag(CliTest):
    @classmethod
    def setUpClass(cls):
        torch.manual_seed(0)
        model = tr.GPT(L, NH, C, V, BLOCK, bias=True)
        model.init_weights(0)
        # Weights far from nanoGPT's init, so that the endings' losses differ by much more than
        # float32's rounding, and every tensor (biases, LayerNorms) matters.
        with torch.no_grad():
            model.wte.mul_(15.0)
            model.wpe.mul_(10.0)
            for name, p in model.named_parameters():
                if p.dim() == 1:
                    p.add_(0.2 * torch.randn_like(p))
                elif name not in ("wte", "wpe"):
                    p.mul_(4.0)
        cls.flat = tr.llmc_flat(model).numpy().astype(np.float32)
        tr.load_llmc_flat(model, torch.from_numpy(cls.flat.copy()))  # what finegpt reads
        cls.model = model.double()
        cls.examples = tiktoken_examples(FIXTURE)

    def setUp(self):
        super().setUp()
        self.model_file = os.path.join(self.tmp, "model.bin")
        write_llmc(self.model_file, self.flat, BLOCK)

    def finegpt(self, *args, binary=None):
        scores = os.path.join(self.tmp, "scores.jsonl")
        cmd = ["eval", f"--init_from={self.model_file}", f"--hellaswag={FIXTURE}",
               f"--scores={scores}", "--json", *args]
        if binary:  # tests/finegpt_emulated: the rank file is finegpt's, beside build/finegpt
            env = dict(os.environ, FINEGPT_GPT2_RANKS=os.path.join(
                os.path.dirname(FINEGPT), "assets", "gpt2.tiktoken"))
            p = subprocess.run([binary, *cmd], capture_output=True, text=True, timeout=600,
                               env=env)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        else:
            p = run(*cmd, check=True)
        with open(scores) as f:
            per = [json.loads(line) for line in f]
        return json.loads(p.stdout), per, p.stderr

    def assertMatchesReference(self, summary, per, ref, rel=2e-6):
        self.assertEqual(len(per), len(ref))
        for i, (got, want) in enumerate(zip(per, ref)):
            self.assertEqual(got["label"], want["label"], i)
            self.assertEqual(got["tokens"], want["tokens"], i)
            self.assertEqual(got["cropped"], want["cropped"], i)
            for k in range(4):
                self.assertAlmostEqual(got["sum_loss"][k], want["sum"][k],
                                       delta=rel * abs(want["sum"][k]), msg=f"example {i}")
                self.assertAlmostEqual(got["mean_loss"][k], want["mean"][k],
                                       delta=rel * abs(want["mean"][k]), msg=f"example {i}")
            # The choices are compared where float32 cannot flip them.
            self.assertGreater(margin(want["sum"]), 1e-3, i)
            self.assertGreater(margin(want["mean"]), 1e-3, i)
            self.assertEqual((got["pred"], got["pred_norm"]), (want["pred"], want["pred_norm"]), i)
        n = len(ref)
        correct = sum(r["pred"] == r["label"] for r in ref)
        correct_norm = sum(r["pred_norm"] == r["label"] for r in ref)
        self.assertEqual(summary["examples"], n)
        self.assertEqual((summary["correct"], summary["correct_norm"]), (correct, correct_norm))
        self.assertAlmostEqual(summary["acc"], correct / n, places=12)
        self.assertAlmostEqual(summary["acc_norm"], correct_norm / n, places=12)
        self.assertEqual(summary["cropped"], sum(r["cropped"] for r in ref))

    def test_scores_equal_pytorch(self):
        ref = reference_scores(self.model, self.examples, BLOCK)
        # The fixture tells the two rules apart: sum and mean choose differently somewhere, and
        # neither accuracy is 0 or 1.
        self.assertTrue(any(r["pred"] != r["pred_norm"] for r in ref))
        self.assertNotIn(sum(r["pred"] == r["label"] for r in ref), (0, len(ref)))
        self.assertNotIn(sum(r["pred_norm"] == r["label"] for r in ref), (0, len(ref)))
        self.assertFalse(any(r["cropped"] for r in ref))
        for batch in ("1", "5", "16"):  # one example per forward, a remainder, all at once
            summary, per, _ = self.finegpt(f"--batch_size={batch}")
            self.assertMatchesReference(summary, per, ref)
            self.assertEqual(summary["block_size"], BLOCK)

    def test_cropped_rows_equal_pytorch(self):
        longest_ending = max(len(e) for ex in self.examples for e in ex["ends"])
        block = longest_ending + 3
        ref = reference_scores(self.model, self.examples, block)
        self.assertTrue(any(r["cropped"] for r in ref))
        self.assertFalse(all(r["cropped"] for r in ref))
        summary, per, _ = self.finegpt(f"--block_size={block}", "--batch_size=3")
        self.assertMatchesReference(summary, per, ref)
        p = run("eval", f"--init_from={self.model_file}", f"--hellaswag={FIXTURE}",
                f"--block_size={block}", check=True)
        self.assertIn(f"cropped from the left to block_size {block}", p.stdout)
        # An ending that leaves no room for a context token is refused, naming the line.
        short = longest_ending - 1
        self.assertCleanError(run("eval", f"--init_from={self.model_file}",
                                  f"--hellaswag={FIXTURE}", f"--block_size={short}"),
                              "hellaswag_fixture.jsonl:", "too long for block_size")

    def test_max_examples_progress_and_text_summary(self):
        ref = reference_scores(self.model, self.examples[:6], BLOCK)
        summary, per, err = self.finegpt("--max_examples=6", "--batch_size=4")
        self.assertMatchesReference(summary, per, ref)
        self.assertIn("hellaswag: 6/6 examples (100%), acc_norm", err)  # the last progress line
        self.assertIn("examples/s, ETA", err)
        p = run("eval", f"--init_from={self.model_file}", f"--hellaswag={FIXTURE}", "--quiet",
                check=True)
        self.assertEqual(p.stderr, "")
        correct = sum(r["pred_norm"] == r["label"] for r in reference_scores(
            self.model, self.examples, BLOCK))
        self.assertIn(f"16 examples, acc_norm {correct / 16:.4f} ({correct}/16), acc ", p.stdout)

    @unittest.skipUnless(EMULATED and os.path.exists(EMULATED),
                         "needs finegpt_emulated (the CUDA seam emulated on the host)")
    def test_cuda_engine_matches_cpu(self):
        cpu_summary, cpu, _ = self.finegpt("--batch_size=8")
        gpu_summary, gpu, _ = self.finegpt("--batch_size=8", "--device=cuda", binary=EMULATED)
        self.assertIn("cuda", gpu_summary["device"])
        self.assertEqual(gpu_summary["examples"], 16)
        diffs = []
        for c, g in zip(cpu, gpu):
            self.assertEqual(c["tokens"], g["tokens"])
            for k in range(4):
                # bf16 weights and activations: within 1% of the CPU's loss, and not equal to it
                self.assertAlmostEqual(g["mean_loss"][k], c["mean_loss"][k],
                                       delta=0.01 * c["mean_loss"][k])
                diffs.append(abs(g["mean_loss"][k] - c["mean_loss"][k]))
            if margin(c["mean_loss"]) > 0.1 * max(c["mean_loss"]):  # clear choices agree
                self.assertEqual(g["pred_norm"], c["pred_norm"])
        self.assertGreater(max(diffs), 0.0)


class HellaswagInput(CliTest):
    """Refusals that need a model: a char-vocabulary one cannot read HellaSwag's text."""

    def test_char_model_is_refused(self):
        data = self.char_data()
        out = os.path.join(self.tmp, "out")
        run("train", f"--data_dir={data}", f"--out_dir={out}", "--n_layer=1", "--n_head=2",
            "--n_embd=32", "--block_size=16", "--batch_size=4", "--gradient_accumulation_steps=1",
            "--max_iters=2", "--eval_interval=2", "--eval_iters=1", check=True)
        self.assertCleanError(run("eval", f"--out_dir={out}", f"--hellaswag={FIXTURE}"),
                              "GPT-2's vocabulary", "character vocabulary")


if __name__ == "__main__":
    unittest.main()
