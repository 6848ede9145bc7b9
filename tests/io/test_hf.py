"""Hugging Face GPT-2 models against transformers (issue 14): finegpt's export loads in
GPT2LMHeadModel and its tokenizers with the same losses and greedy text as finegpt; a model
transformers writes loads in finegpt (a folder, or 'gpt2' from a hub cache) with the same losses,
greedy text token for token and fine-tuning. Runs on .venv-torch (Debian's torch, transformers
4.40; tests/CMakeLists.txt)."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer, GPT2TokenizerFast

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from finegpt_testing import FINEGPT, SHAKESPEARE, write_shard  # noqa: E402

transformers.logging.set_verbosity_error()
torch.set_num_threads(2)

# The sha256 of openai-community/gpt2's vocab.json (1,042,301 bytes) and merges.txt (456,318
# bytes). Checked against a real copy: openai-whisper 20230124 on PyPI ships GPT-2's tokenizer
# (whisper/assets/gpt2/), written by huggingface/tokenizers (compact UTF-8 JSON, a longer
# "#version" line); its 50257 entries in id order, written as the hub's file is (Python's
# json.dumps defaults) and its 50000 merges under "#version: 0.2", hash to these.
GPT2_VOCAB_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
GPT2_MERGES_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"


def run(*args, env=None, check=True):
    p = subprocess.run([FINEGPT, *map(str, args)], capture_output=True, timeout=600,
                       env=dict(os.environ, OMP_NUM_THREADS="2", **(env or {})))
    if check and p.returncode != 0:
        raise AssertionError(f"finegpt {' '.join(map(str, args))}:\n{p.stdout.decode()}\n"
                             f"{p.stderr.decode()}")
    return p


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def shard_tokens(path, n):
    return np.fromfile(path, dtype=np.uint16, offset=1024)[:n].astype(np.int64)


def hf_loss(model, tokens, B, T):
    """transformers' mean cross-entropy over B sequences of T tokens (next-token targets)."""
    x = torch.tensor(tokens[:B * T]).view(B, T)
    y = torch.tensor(tokens[1:B * T + 1]).view(B, T)
    with torch.no_grad():
        logits = model(x).logits.float()
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                             y.reshape(-1)).item()


def fg_loss(init_from, shard, B, T, env=None):
    p = run("eval", f"--init_from={init_from}", f"--input={shard}", f"--tokens={B * T}",
            f"--batch_size={B}", f"--block_size={T}", env=env)
    return float(p.stdout.decode().split("loss ")[-1])


def fg_greedy(init_from, start, n, env=None, tokenizer=None):
    """finegpt sample's greedy text (top_k=1), as bytes."""
    args = ["sample", f"--init_from={init_from}", f"--start={start}", "--num_samples=1",
            f"--max_new_tokens={n}", "--top_k=1", "--temperature=1.0"]
    if tokenizer:
        args.append(f"--tokenizer={tokenizer}")
    out = run(*args, env=env).stdout
    return out[:out.index(b"\n---------------\n")]


def hf_greedy_ids(model, ids, n):
    """transformers' greedy continuation (generate, do_sample=False), never stopping early."""
    model.generation_config.eos_token_id = None
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n,
                             min_new_tokens=0, pad_token_id=0)
    return out[0].tolist()


def token_bytes(tok, ids):
    """The bytes of token ids through the slow tokenizer's own byte decoder, token by token."""
    return b"".join(bytes(tok.byte_decoder[c] for c in t) for t in tok.convert_ids_to_tokens(ids))


def gpt2_data(root):
    text = os.path.join(root, "shk.txt")
    with open(SHAKESPEARE, encoding="utf-8") as f, open(text, "w", encoding="utf-8") as g:
        g.write(f.read()[:150000])
    data = os.path.join(root, "gpt2data")
    run("prepare", "--input", text, "--out", data, "--name", "shk", "--shard-tokens", "20000",
        "--quiet")
    return data


def train(data, out, *extra):
    run("train", f"--data_dir={data}", f"--out_dir={out}", "--n_layer=2", "--n_head=2",
        "--n_embd=32", "--block_size=32", "--batch_size=4", "--gradient_accumulation_steps=1",
        "--max_iters=12", "--eval_interval=12", "--eval_iters=1", "--learning_rate=3e-3",
        "--warmup_iters=2", "--lr_decay_iters=12", "--device=cpu", *extra)


class Export(unittest.TestCase):
    """Trained finegpt models (GPT-2 vocabulary with and without biases; a char vocabulary)
    exported with --format hf and loaded by transformers."""

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        root = cls.root = cls._tmp.name
        cls.gpt2data = gpt2_data(root)
        cls.chars = os.path.join(root, "chars")
        run("prepare", "--tokenizer", "char", "--input", SHAKESPEARE, "--out", cls.chars,
            "--quiet")
        cls.models = {}
        for name, data, extra in (("bias", cls.gpt2data, ["--bias=True"]),
                                  ("nobias", cls.gpt2data, ["--bias=False"]),
                                  ("chars", cls.chars, ["--bias=True"])):
            out, hf = os.path.join(root, "out-" + name), os.path.join(root, "hf-" + name)
            train(data, out, *extra)
            p = run("export", f"--out_dir={out}", "--format=hf", f"--out={hf}")
            cls.models[name] = (out, hf, p.stdout.decode())

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def val_shard(self, name):
        data = self.chars if name == "chars" else self.gpt2data
        return os.path.join(data, sorted(f for f in os.listdir(data) if "_val_" in f)[0])

    def test_losses_match_transformers(self):
        for name, (out, hf, _) in self.models.items():
            with self.subTest(name):
                model = GPT2LMHeadModel.from_pretrained(hf).eval()
                shard = self.val_shard(name)
                B, T = 8, 32
                ours = fg_loss(out, shard, B, T)
                theirs = hf_loss(model, shard_tokens(shard, B * T + 1), B, T)
                self.assertAlmostEqual(ours, theirs, delta=1e-4)
                # it learned something: below a uniform guess (ln 50257 = 10.8, ln 65 = 4.2)
                self.assertLess(ours, 10.6 if name != "chars" else 4.0)

    def test_greedy_text_matches_transformers(self):
        for name, start in (("bias", "To be"), ("nobias", "ROMEO:"), ("chars", "ROMEO:")):
            with self.subTest(name):
                out, hf, _ = self.models[name]
                tok = GPT2Tokenizer.from_pretrained(hf)
                model = GPT2LMHeadModel.from_pretrained(hf).eval()
                prompt = tok(start)["input_ids"]
                n = 32 - len(prompt)  # within the block: transformers cannot go past it
                ids = hf_greedy_ids(model, prompt, n)
                self.assertEqual(len(ids), 32)
                self.assertEqual(fg_greedy(out, start, n), token_bytes(tok, ids))
                # From the exported folder, with its own tokenizer files (GPT-2's, or the char
                # vocabulary's vocab.json).
                self.assertEqual(fg_greedy(hf, start, n), token_bytes(tok, ids))

    def test_gpt2_tokenizer_files_are_gpt2s(self):
        for name in ("bias", "nobias"):
            hf = self.models[name][1]
            self.assertEqual(sha256(os.path.join(hf, "vocab.json")), GPT2_VOCAB_SHA256)
            self.assertEqual(sha256(os.path.join(hf, "merges.txt")), GPT2_MERGES_SHA256)
        hf = self.models["bias"][1]
        with open(SHAKESPEARE, encoding="utf-8") as f:
            text = f.read()[:20000] + " naïve café 東京 🤗 don't  \n\n  it's 123456 "
        sample = os.path.join(self.root, "sample.txt")
        with open(sample, "w", encoding="utf-8") as f:
            f.write(text)
        ours = [int(t) for t in run("tokenize", sample).stdout.split()]
        for cls in (GPT2TokenizerFast, GPT2Tokenizer):
            with self.subTest(cls.__name__):
                self.assertEqual(cls.from_pretrained(hf)(text)["input_ids"], ours)

    def test_char_vocabulary_exports_a_byte_level_tokenizer_without_merges(self):
        out, hf, _ = self.models["chars"]
        with open(os.path.join(hf, "merges.txt"), encoding="utf-8") as f:
            self.assertEqual(f.read(), "#version: 0.2\n")
        with open(os.path.join(self.chars, "meta.json"), encoding="utf-8") as f:
            itos = json.load(f)["itos"]
        with open(os.path.join(hf, "config.json"), encoding="utf-8") as f:
            self.assertEqual(json.load(f)["vocab_size"], len(itos))
        with open(SHAKESPEARE, encoding="utf-8") as f:
            text = f.read()[-5000:]
        want = [itos.index(c) for c in text]
        for cls in (GPT2TokenizerFast, GPT2Tokenizer):
            with self.subTest(cls.__name__):
                self.assertEqual(cls.from_pretrained(hf)(text)["input_ids"], want)

    def test_biases(self):
        """Without biases, the export's biases are zeros (the same function; GPT-2 in
        transformers always has them); with biases, they are the model's."""
        self.assertIn("written as zeros", self.models["nobias"][2])
        for name in ("nobias", "bias"):
            tensors = load_file(os.path.join(self.models[name][1], "model.safetensors"))
            biases = [k for k in tensors if k.endswith(".bias")]
            self.assertEqual(len(biases), 6 * 2 + 1)  # per layer: 2 LayerNorms, 4 linears
            zero = all(bool((tensors[k] == 0).all()) for k in biases)
            self.assertEqual(zero, name == "nobias", name)

    def test_bfloat16_export_is_the_float32_export_rounded(self):
        out, hf, _ = self.models["bias"]
        bf = os.path.join(self.root, "hf-bf16")
        run("export", f"--out_dir={out}", "--format=hf", f"--out={bf}", "--dtype=bfloat16")
        a = load_file(os.path.join(hf, "model.safetensors"))
        b = load_file(os.path.join(bf, "model.safetensors"))
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            self.assertEqual(b[k].dtype, torch.bfloat16)
            self.assertTrue(torch.equal(a[k].to(torch.bfloat16), b[k]), k)
        with open(os.path.join(bf, "config.json")) as f:
            self.assertEqual(json.load(f)["torch_dtype"], "bfloat16")

    def test_export_again_replaces_an_earlier_export(self):
        out, hf, _ = self.models["chars"]
        again = os.path.join(self.root, "again")
        run("export", f"--out_dir={out}", "--format=hf", f"--out={again}")
        run("export", f"--out_dir={out}", "--format=hf", f"--out={again}")
        self.assertEqual(sorted(os.listdir(again)), sorted(os.listdir(hf)))
        for f in os.listdir(hf):
            self.assertEqual(sha256(os.path.join(again, f)), sha256(os.path.join(hf, f)))

    def test_non_ascii_char_vocabulary_exports_the_model_only(self):
        src = os.path.join(self.root, "accents.txt")
        with open(src, "w", encoding="utf-8") as f:
            f.write("café, naïve, déjà vu. " * 400)
        data, out, hf = (os.path.join(self.root, n) for n in ("acc", "out-acc", "hf-acc"))
        run("prepare", "--tokenizer", "char", "--input", src, "--out", data, "--quiet")
        run("train", f"--data_dir={data}", f"--out_dir={out}", "--n_layer=1", "--n_head=2",
            "--n_embd=32", "--block_size=16", "--batch_size=4", "--max_iters=2",
            "--eval_interval=2", "--eval_iters=1", "--device=cpu")
        p = run("export", f"--out_dir={out}", "--format=hf", f"--out={hf}")
        self.assertIn("no tokenizer files", p.stdout.decode())
        self.assertEqual(sorted(os.listdir(hf)), ["config.json", "model.safetensors"])
        model = GPT2LMHeadModel.from_pretrained(hf).eval()
        shard = os.path.join(data, sorted(f for f in os.listdir(data) if "_val_" in f)[0])
        self.assertAlmostEqual(fg_loss(out, shard, 2, 16),
                               hf_loss(model, shard_tokens(shard, 33), 2, 16), delta=1e-4)


    def test_padded_vocabulary_exports_the_model_only(self):
        """vocab_size = 50304 (nanoGPT's padded GPT-2): the model, as transformers loads it,
        and no tokenizer files, which would have another vocabulary."""
        out, hf = os.path.join(self.root, "out-pad"), os.path.join(self.root, "hf-pad")
        train(self.gpt2data, out, "--vocab_size=50304", "--max_iters=2", "--eval_interval=2")
        p = run("export", f"--out_dir={out}", "--format=hf", f"--out={hf}")
        self.assertIn("no tokenizer files (the model's vocabulary has 50304", p.stdout.decode())
        self.assertEqual(sorted(os.listdir(hf)), ["config.json", "model.safetensors"])
        model = GPT2LMHeadModel.from_pretrained(hf).eval()
        self.assertEqual(model.config.vocab_size, 50304)
        shard = self.val_shard("bias")
        self.assertAlmostEqual(fg_loss(out, shard, 4, 32),
                               hf_loss(model, shard_tokens(shard, 4 * 32 + 1), 4, 32), delta=1e-4)


def hub_layout(hub, repo, folder):
    """folder's files as the hub cache keeps a download: blobs by hash, a snapshot of links,
    refs/main naming the snapshot."""
    sha = hashlib.sha1(repo.encode()).hexdigest()
    base = os.path.join(hub, repo)
    snap = os.path.join(base, "snapshots", sha)
    os.makedirs(snap)
    os.makedirs(os.path.join(base, "blobs"))
    os.makedirs(os.path.join(base, "refs"))
    with open(os.path.join(base, "refs", "main"), "w") as f:
        f.write(sha)
    for name in os.listdir(folder):
        h = sha256(os.path.join(folder, name))
        shutil.copyfile(os.path.join(folder, name), os.path.join(base, "blobs", h))
        os.symlink(os.path.join("..", "..", "blobs", h), os.path.join(snap, name))
    return snap


class Import(unittest.TestCase):
    """A random GPT-2 written by transformers' save_pretrained, read by finegpt."""

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        root = cls.root = cls._tmp.name
        torch.manual_seed(0)
        cfg = GPT2Config(vocab_size=50257, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                         initializer_range=0.1)
        cls.model = GPT2LMHeadModel(cfg).eval()
        with torch.no_grad():  # biases and LayerNorms away from their initial 0 and 1
            for k, v in cls.model.named_parameters():
                if k.endswith(".bias") or "ln_" in k:
                    v.add_(torch.randn_like(v) * 0.1)
        cls.plain = os.path.join(root, "plain")
        cls.model.save_pretrained(cls.plain, safe_serialization=True)
        # GPT-2's tokenizer files beside it, as the hub's copy has them (finegpt's export).
        tok = os.path.join(root, "tok")
        run("export", f"--init_from={cls.plain}", "--format=hf", f"--out={tok}")
        for f in ("vocab.json", "merges.txt"):
            shutil.copyfile(os.path.join(tok, f), os.path.join(cls.plain, f))
        cls.tok = GPT2Tokenizer.from_pretrained(cls.plain)
        cls.gpt2data = gpt2_data(root)
        cls.shard = os.path.join(cls.gpt2data, sorted(f for f in os.listdir(cls.gpt2data)
                                                      if "_val_" in f)[0])

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def test_eval_matches_transformers(self):
        theirs = hf_loss(self.model, shard_tokens(self.shard, 4 * 64 + 1), 4, 64)
        self.assertAlmostEqual(fg_loss(self.plain, self.shard, 4, 64), theirs, delta=1e-4)

    def test_greedy_sample_matches_generate_token_for_token(self):
        start = "Hello, my name is"
        prompt = self.tok(start)["input_ids"]
        ids = hf_greedy_ids(self.model, prompt, 40)
        self.assertGreater(len(set(ids[len(prompt):])), 1)  # not one token over and over
        self.assertEqual(fg_greedy(self.plain, start, 40), token_bytes(self.tok, ids))

    def test_gpt2_names_from_the_hub_cache(self):
        start = "The meaning of life"
        want = token_bytes(self.tok, hf_greedy_ids(self.model, self.tok(start)["input_ids"], 20))
        for repo in ("models--openai-community--gpt2", "models--gpt2"):
            with self.subTest(repo):
                home = tempfile.mkdtemp(dir=self.root)
                hub_layout(os.path.join(home, "hub"), repo, self.plain)
                self.assertEqual(fg_greedy("gpt2", start, 20, env={"HF_HOME": home}), want)
        cache = tempfile.mkdtemp(dir=self.root)  # HF_HUB_CACHE names the hub folder itself
        hub_layout(cache, "models--openai-community--gpt2-medium", self.plain)
        self.assertEqual(fg_greedy("gpt2-medium", start, 20,
                                   env={"HF_HUB_CACHE": cache, "HF_HOME": "/nonexistent"}), want)

    def test_gpt2_name_without_a_copy(self):
        home = tempfile.mkdtemp(dir=self.root)
        p = run("sample", "--init_from=gpt2-xl", env={"HF_HOME": home}, check=False)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 1, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("finegpt download openai-community/gpt2-xl", err)
        self.assertIn(os.path.join(home, "hub", "models--openai-community--gpt2-xl"), err)

    def test_half_precision_and_the_original_upload_layout(self):
        """F16 and BF16 files (widened exactly), and the names of the original GPT-2 upload: no
        'transformer.' prefix, causal-mask buffers, a tied lm_head.weight."""
        state = {k: v.clone() for k, v in self.model.state_dict().items()}
        for dtype in (torch.float16, torch.bfloat16):
            with self.subTest(str(dtype)):
                folder = tempfile.mkdtemp(dir=self.root)
                shutil.copyfile(os.path.join(self.plain, "config.json"),
                                os.path.join(folder, "config.json"))
                tensors = {k.removeprefix("transformer."): v.to(dtype).contiguous()
                           for k, v in state.items() if k != "lm_head.weight"}
                tensors["lm_head.weight"] = tensors["wte.weight"].clone()
                for l in range(2):
                    tensors[f"h.{l}.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))
                    tensors[f"h.{l}.attn.masked_bias"] = torch.tensor(-1e4)
                save_file(tensors, os.path.join(folder, "model.safetensors"),
                          metadata={"format": "pt"})
                # transformers' model with the same rounded weights, widened to fp32
                model = GPT2LMHeadModel(self.model.config).eval()
                model.load_state_dict({k: v.to(dtype).float() for k, v in state.items()})
                theirs = hf_loss(model, shard_tokens(self.shard, 2 * 64 + 1), 2, 64)
                self.assertAlmostEqual(fg_loss(folder, self.shard, 2, 64), theirs, delta=1e-4)

    def test_export_of_an_import_is_the_same_model(self):
        again = os.path.join(self.root, "again")
        run("export", f"--init_from={self.plain}", "--format=hf", f"--out={again}")
        a = load_file(os.path.join(self.plain, "model.safetensors"))
        b = load_file(os.path.join(again, "model.safetensors"))
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            self.assertTrue(torch.equal(a[k], b[k]), k)

    def test_finetune_from_it(self):
        """nanoGPT's from_pretrained rules: the shape comes from the model (the config's n_layer
        is not used), block_size crops, dropout may be set. With learning_rate 0 the weights
        are the model's (its loss at block 32 is transformers'); with training the loss falls."""
        home = tempfile.mkdtemp(dir=self.root)
        hub_layout(os.path.join(home, "hub"), "models--openai-community--gpt2", self.plain)
        env = {"HF_HOME": home}
        common = [f"--data_dir={self.gpt2data}", "--init_from=gpt2", "--n_layer=6",
                  "--block_size=32", "--batch_size=4", "--gradient_accumulation_steps=1",
                  "--eval_iters=1", "--device=cpu", "--warmup_iters=0", "--decay_lr=False"]
        still = os.path.join(self.root, "ft0")
        p = run("train", f"--out_dir={still}", *common, "--max_iters=1", "--eval_interval=1",
                "--learning_rate=0", "--weight_decay=0", "--always_save_checkpoint=True", env=env)
        self.assertIn("init_from: model shape from", p.stdout.decode())
        theirs = hf_loss(self.model, shard_tokens(self.shard, 8 * 32 + 1), 8, 32)
        self.assertAlmostEqual(fg_loss(still, self.shard, 8, 32), theirs, delta=1e-4)
        tuned = os.path.join(self.root, "ft")
        run("train", f"--out_dir={tuned}", *common, "--max_iters=30", "--eval_interval=30",
            "--learning_rate=1e-3", "--dropout=0.1", "--always_save_checkpoint=True", env=env)
        with open(os.path.join(tuned, "metrics.jsonl")) as f:
            losses = [r["loss"] for r in map(json.loads, f) if "loss" in r]
        self.assertLess(np.mean(losses[-5:]), np.mean(losses[:5]) - 0.5)
        self.assertLess(fg_loss(tuned, self.shard, 8, 32), theirs - 0.5)


if __name__ == "__main__":
    unittest.main()
