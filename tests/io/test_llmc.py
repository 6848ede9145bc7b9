"""llm.c model files in and out: files written with numpy from tests/e2e/torch_reference.py's
PyTorch model are read by `finegpt eval` (fp32 version 3 and bf16 version 5) and give the
PyTorch loss; `finegpt export` writes them back byte for byte; bad files fail cleanly."""
import os
import sys
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from finegpt_testing import CliTest, read, run, write_shard  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import torch_reference as tr  # noqa: E402

L, NH, C, V, T, B = 2, 4, 48, 101, 16, 3


def bf16_round(a):
    """float32 -> bfloat16 bits, rounding to nearest even (as llm.c's export)."""
    bits = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return bits.astype(np.uint16)


def write_llmc(path, flat, version, maxT=T):
    header = np.zeros(256, dtype=np.int32)
    header[:8] = [20240326, version, maxT, V, L, NH, C, tr.padded_vocab(V)]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(flat, np.float32).tobytes() if version == 3 else bf16_round(flat).tobytes())


class LlmcFiles(CliTest):
    def setUp(self):
        super().setUp()
        cfg = tr.RefConfig(L=L, NH=NH, C=C, V=V, T=T, B=B, bias=True)
        torch.manual_seed(0)
        self.model = tr.GPT.from_config(cfg)
        self.model.init_weights(0)
        # Non-zero biases and LayerNorm parameters, so that every tensor matters.
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if p.dim() == 1:
                    p.add_(0.1 * torch.randn_like(p))
        self.flat = tr.llmc_flat(self.model).numpy().astype(np.float32)
        rng = np.random.default_rng(1)
        self.tokens = rng.integers(0, V, size=4 * B * T + 1).astype(np.uint16)
        self.shard = os.path.join(self.tmp, "tok_val_000000.bin")
        write_shard(self.shard, self.tokens)

    def torch_loss(self, model, n_batches):
        """Mean loss over n sequential (B, T) batches of the shard, as finegpt eval reads it."""
        losses = []
        with torch.no_grad():
            for s in range(n_batches):
                buf = torch.tensor(self.tokens[s * B * T: (s + 1) * B * T + 1].astype(np.int64))
                x, y = buf[:-1].view(B, T), buf[1:].view(B, T)
                _, loss = model(x, y)
                losses.append(float(loss))
        return sum(losses) / len(losses)

    def finegpt_eval(self, model_file, n_batches):
        p = run("eval", f"--init_from={model_file}", f"--input={self.shard}",
                f"--tokens={n_batches * B * T}", f"--batch_size={B}", f"--block_size={T}",
                check=True)
        return float(p.stdout.split("loss ")[-1])

    def test_fp32_file_gives_pytorch_loss(self):
        path = os.path.join(self.tmp, "model.bin")
        write_llmc(path, self.flat, 3)
        want = self.torch_loss(self.model, 4)
        self.assertAlmostEqual(self.finegpt_eval(path, 4), want, delta=1e-5 * want)

    def test_bf16_file_gives_pytorch_loss_of_rounded_weights(self):
        path = os.path.join(self.tmp, "model_bf16.bin")
        write_llmc(path, self.flat, 5)
        widened = (bf16_round(self.flat).astype(np.uint32) << 16).view(np.float32)
        tr.load_llmc_flat(self.model, torch.from_numpy(widened.copy()))
        want = self.torch_loss(self.model, 4)
        self.assertAlmostEqual(self.finegpt_eval(path, 4), want, delta=1e-5 * want)

    def test_export_round_trips_byte_for_byte(self):
        src = os.path.join(self.tmp, "model.bin")
        write_llmc(src, self.flat, 3)
        out = os.path.join(self.tmp, "again.bin")
        run("export", f"--init_from={src}", f"--output={out}", check=True)
        self.assertEqual(read(src), read(out))
        bf = os.path.join(self.tmp, "again_bf16.bin")
        run("export", f"--init_from={src}", f"--output={bf}", "--dtype=bfloat16", check=True)
        want = os.path.join(self.tmp, "want_bf16.bin")
        write_llmc(want, self.flat, 5)
        self.assertEqual(read(want), read(bf))

    def test_bias_free_checkpoint_exports_with_zero_biases(self):
        data = self.char_data()
        out = os.path.join(self.tmp, "out")
        run("train", f"--data_dir={data}", f"--out_dir={out}", "--n_layer=2", "--n_head=2",
            "--n_embd=32", "--block_size=16", "--batch_size=4", "--gradient_accumulation_steps=1",
            "--max_iters=10", "--eval_interval=10", "--eval_iters=2", "--bias=False",
            "--warmup_iters=2", "--lr_decay_iters=10", check=True)
        exported = os.path.join(self.tmp, "exported.bin")
        run("export", f"--out_dir={out}", f"--output={exported}", check=True)
        header = np.fromfile(exported, dtype=np.int32, count=256)
        self.assertEqual(list(header[:8]), [20240326, 3, 16, 65, 2, 2, 32, 128])
        val = os.path.join(data, "chars_val_000000.bin")
        args = [f"--input={val}", "--tokens=4096", "--batch_size=4", "--block_size=16"]
        a = run("eval", f"--out_dir={out}", *args, check=True).stdout.split("loss ")[-1]
        b = run("eval", f"--init_from={exported}", *args, check=True).stdout.split("loss ")[-1]
        self.assertEqual(a, b)  # the same function, exactly

    def test_init_from_llmc_file_trains(self):
        path = os.path.join(self.tmp, "model.bin")
        write_llmc(path, self.flat, 3)
        data = os.path.join(self.tmp, "d")
        os.makedirs(data)
        write_shard(os.path.join(data, "d_val_000000.bin"), self.tokens)
        write_shard(os.path.join(data, "d_train_000001.bin"), self.tokens)
        p = run("train", f"--init_from={path}", f"--data_dir={data}", f"--out_dir={self.tmp}/o",
                f"--block_size={T}", "--batch_size=2", "--gradient_accumulation_steps=1",
                "--max_iters=2", "--eval_interval=2", "--eval_iters=1", check=True)
        self.assertIn("init_from: model shape from", p.stdout)
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "o", "ckpt.bin")))

    def test_bad_model_files(self):
        path = os.path.join(self.tmp, "model.bin")
        write_llmc(path, self.flat, 3)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 8)
        self.assertCleanError(run("eval", f"--init_from={path}", f"--input={self.shard}"),
                              "model.bin", "truncated")
        write_llmc(path, self.flat, 4)
        self.assertCleanError(run("eval", f"--init_from={path}", f"--input={self.shard}"),
                              "model.bin", "version 4")
        with open(path, "wb") as f:
            f.write(b"\x01\x02\x03\x04" * 300)
        self.assertCleanError(run("export", f"--init_from={path}", f"--output={self.tmp}/x.bin"),
                              "model.bin")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "x.bin")))
        self.assertNoPartialFiles(self.tmp)


if __name__ == "__main__":
    unittest.main()
