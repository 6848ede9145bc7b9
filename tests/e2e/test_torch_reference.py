"""Checks of the PyTorch reference itself (tests/e2e/torch_reference.py), before the C++ is held to it.

Run: /usr/bin/python3 -m unittest -v tests/e2e/test_torch_reference.py
It checks the reference against things it does not share code with: ln(V) at
init, finite differences, a float64 run, a numpy forward written from the
llm.c layout, a hand-written AdamW step, and the analytic parameter count.
"""

import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch_reference as tr  # noqa: E402

SCRIPT = os.path.join(HERE, "torch_reference.py")
BIAS_NAMES = {"ln1b", "qkvb", "attprojb", "ln2b", "fcb", "fcprojb", "lnfb"}


def small_cfg(**kw):
    return dataclasses.replace(tr.RefConfig(threads=2), **kw)


def tiny_model(bias=True, dtype=torch.float64, seed=3):
    m = tr.GPT(L=2, NH=2, C=8, V=13, T=5, bias=bias)
    m.init_weights(seed)
    return m.to(dtype)


def run_cli(out, *args):
    cmd = [sys.executable, SCRIPT, "--out", out, "--threads", "2", *args]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


# ----------------------------------------------------------------------------- independent numpy forward


def np_forward(flat, L, NH, C, V, T, bias, idx):
    """GPT-2 forward from the llm.c-order flat vector, in float64 numpy; returns logits (B, T, Vp)."""
    layout = tr.param_layout(L, C, V, T, bias)
    p = tr.split_flat(np.asarray(flat, dtype=np.float64), layout)
    z = lambda n: np.zeros(n)  # noqa: E731

    def ln(x, w, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * w + b

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))

    B, Tn = idx.shape
    HS = C // NH
    x = p["wte"][idx] + p["wpe"][:Tn]
    for l in range(L):
        h = ln(x, p["ln1w"][l], p["ln1b"][l] if bias else z(C))
        qkv = h @ p["qkvw"][l].T + (p["qkvb"][l] if bias else 0)
        q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]
        y = np.zeros_like(h)
        for hh in range(NH):
            s = slice(hh * HS, (hh + 1) * HS)
            att = q[..., s] @ np.swapaxes(k[..., s], 1, 2) / math.sqrt(HS)
            att = np.where(np.tril(np.ones((Tn, Tn), bool)), att, -np.inf)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            y[..., s] = att @ v[..., s]
        x = x + y @ p["attprojw"][l].T + (p["attprojb"][l] if bias else 0)
        h = ln(x, p["ln2w"][l], p["ln2b"][l] if bias else z(C))
        h = gelu(h @ p["fcw"][l].T + (p["fcb"][l] if bias else 0))
        x = x + h @ p["fcprojw"][l].T + (p["fcprojb"][l] if bias else 0)
    x = ln(x, p["lnfw"], p["lnfb"] if bias else z(C))
    return x @ p["wte"].T


def np_loss(logits, targets, V):
    lg = logits[..., :V].reshape(-1, V)
    m = lg.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(lg - m).sum(-1, keepdims=True)))[:, 0]
    return float(np.mean(lse - lg[np.arange(len(lg)), targets.reshape(-1)]))


class TestLayout(unittest.TestCase):
    def test_param_count_matches_formula(self):
        # GPT-2 124M with the padded vocabulary (REFERENCE.md: 124,475,904; 124,439,808 unpadded)
        self.assertEqual(tr.param_count(12, 768, 50257, 1024, True), 124_475_904)
        self.assertEqual(tr.param_count(12, 768, 50257, 1024, True) - (50304 - 50257) * 768, 124_439_808)
        for L, C, V, T, bias in [(2, 64, 101, 16, True), (2, 64, 101, 16, False), (3, 12, 64, 7, True),
                                 (1, 8, 65, 4, False)]:
            Vp = (V + 63) // 64 * 64
            per_layer = 2 * C + 3 * C * C + C * C + 4 * C * C + 4 * C * C
            if bias:
                per_layer += 2 * C + 3 * C + C + 4 * C + C
            want = Vp * C + T * C + L * per_layer + (2 * C if bias else C)
            self.assertEqual(tr.param_count(L, C, V, T, bias), want)
            self.assertEqual(sum(math.prod(s) for _, s in tr.param_layout(L, C, V, T, bias)), want)
            m = tr.GPT(L, 2 if C % 2 == 0 else 1, C, V, T, bias)
            self.assertEqual(sum(p.numel() for p in m.parameters()), want)  # tied head counted once

    def test_flat_roundtrip_and_names(self):
        m = tiny_model(bias=True)
        tensors = tr.llmc_tensors(m)
        layout = tr.param_layout(2, 8, 13, 5, True)
        self.assertEqual([n for n, _ in layout][:4], ["wte", "wpe", "ln1w", "ln1b"])
        self.assertEqual([tuple(t.shape) for t in tensors], [s for _, s in layout])
        flat = tr.llmc_flat(m).numpy().copy()
        m2 = tiny_model(bias=True, seed=99)
        tr.load_llmc_flat(m2, flat)
        np.testing.assert_array_equal(tr.llmc_flat(m2).numpy(), flat)

    def test_numpy_forward_from_llmc_layout_matches(self):
        # a forward written only from the file layout (what the C++ side reads) gives the same logits
        for bias in (True, False):
            m = tiny_model(bias=bias)
            with torch.no_grad():  # make biases and LN params non-trivial so their placement matters
                for p in m.parameters():
                    if p.dim() == 1:
                        p.add_(0.1 * torch.randn(p.shape, dtype=p.dtype))
            idx = torch.randint(0, 13, (2, 5), generator=torch.Generator().manual_seed(1))
            want, _ = m(idx)
            got = np_forward(tr.llmc_flat(m).numpy(), 2, 2, 8, 13, 5, bias, idx.numpy())
            np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12)


class TestModel(unittest.TestCase):
    def test_loss_at_init_near_ln_V(self):
        for V in (101, 1000):
            cfg = small_cfg(V=V)
            m = tr.GPT.from_config(cfg)
            m.init_weights(0)
            x = tr.make_tokens(cfg)[0]
            _, loss = m(x[:, :-1], x[:, 1:])
            # logits have std ~0.02*sqrt(C) = 0.16, so the loss sits just above ln V
            self.assertAlmostEqual(float(loss), math.log(V), delta=0.05)
            self.assertGreater(float(loss), math.log(V) - 0.01)

    def test_gradients_match_finite_differences(self):
        torch.set_num_threads(2)
        gen = np.random.default_rng(0)
        for bias in (True, False):
            m = tiny_model(bias=bias)
            with torch.no_grad():
                for p in m.parameters():  # move off the symmetric init point (LN 1/0, biases 0)
                    p.add_(0.05 * torch.randn(p.shape, dtype=p.dtype))
            idx = torch.randint(0, 13, (2, 6), generator=torch.Generator().manual_seed(2))
            x, y = idx[:, :5], idx[:, 1:]
            _, loss = m(x, y)
            loss.backward()
            flat = tr.llmc_flat(m).numpy().copy()
            grads = tr.llmc_flat(m, grads=True).numpy().copy()
            layout = tr.param_layout(2, 8, 13, 5, bias)
            offsets = np.cumsum([0] + [math.prod(s) for _, s in layout])
            h = 1e-5
            for (name, shape), off in zip(layout, offsets):
                n = math.prod(shape)
                rows = 13 if name == "wte" else None  # rows >= V of wte have zero gradient, checked elsewhere
                span = rows * shape[1] if rows else n
                for i in gen.choice(span, size=min(3, span), replace=False):
                    vals = []
                    for sgn in (1, -1):
                        f = flat.copy()
                        f[off + i] += sgn * h
                        tr.load_llmc_flat(m, f)
                        with torch.no_grad():
                            vals.append(float(m(x, y)[1]))
                    fd = (vals[0] - vals[1]) / (2 * h)
                    self.assertAlmostEqual(grads[off + i], fd, delta=1e-8 + 1e-6 * abs(fd),
                                           msg=f"{name}[{i}] bias={bias}")
                tr.load_llmc_flat(m, flat)

    def test_padded_wte_rows(self):
        cfg = small_cfg(steps=4, accum=2, decay_iters=4)
        res = tr.run_reference(cfg, torch.float64)
        layout = tr.param_layout(cfg.L, cfg.C, cfg.V, cfg.T, cfg.bias)
        g = tr.split_flat(res["grads"], layout)["wte"]
        self.assertTrue(np.all(g[cfg.V:] == 0.0))
        self.assertTrue(np.all(np.abs(g[:cfg.V]).max(1) > 0))
        # with zero gradient, AdamW only decays them: w_final = w0 * prod(1 - lr_t * wd)
        w0 = tr.split_flat(res["params0"], layout)["wte"][cfg.V:].astype(np.float64)
        w1 = tr.split_flat(res["final_params"], layout)["wte"][cfg.V:]
        shrink = np.prod([1 - lr * cfg.wd for lr in res["lrs"]])
        np.testing.assert_allclose(w1, w0 * shrink, rtol=1e-12)


class TestTraining(unittest.TestCase):
    def test_lr_schedule(self):
        cfg = small_cfg(lr=1e-3, min_lr=1e-4, warmup=2, decay_iters=10)
        self.assertAlmostEqual(tr.get_lr(0, cfg), 1e-3 / 3)
        self.assertAlmostEqual(tr.get_lr(1, cfg), 2e-3 / 3)
        self.assertAlmostEqual(tr.get_lr(2, cfg), 1e-3)
        self.assertAlmostEqual(tr.get_lr(6, cfg), 5.5e-4)  # halfway down the cosine
        self.assertAlmostEqual(tr.get_lr(10, cfg), 1e-4)
        self.assertAlmostEqual(tr.get_lr(11, cfg), 1e-4)
        self.assertEqual(tr.get_lr(5, dataclasses.replace(cfg, decay_lr=False)), 1e-3)

    def test_one_step_matches_handwritten_adamw(self):
        # steps=2 with accumulation and clipping active, replayed with numpy float64
        cfg = small_cfg(steps=2, accum=2, grad_clip=0.5, warmup=1, decay_iters=2)
        res = tr.run_reference(cfg, torch.float64)
        layout = tr.param_layout(cfg.L, cfg.C, cfg.V, cfg.T, cfg.bias)
        m = tr.GPT.from_config(cfg).double()
        w = res["params0"].astype(np.float64)
        # wte, wpe and the Linear weights decay; LayerNorm weights and all biases do not
        decayed = {"wte", "wpe", "qkvw", "attprojw", "fcw", "fcprojw"}
        decay = np.concatenate([np.full(math.prod(s), cfg.wd if n in decayed else 0.0) for n, s in layout])
        mom, vel = np.zeros_like(w), np.zeros_like(w)
        k = 0
        for it in range(cfg.steps):
            tr.load_llmc_flat(m, w)
            g = np.zeros_like(w)
            for _ in range(cfg.accum):
                x = torch.from_numpy(res["tokens"][k].astype(np.int64))
                k += 1
                m.zero_grad(set_to_none=True)
                m(x[:, :-1], x[:, 1:])[1].backward()
                g += tr.llmc_flat(m, grads=True).numpy() / cfg.accum
            norm = np.sqrt(np.sum(g * g))
            self.assertAlmostEqual(norm, res["grad_norms"][it], places=12)
            g *= min(1.0, cfg.grad_clip / (norm + 1e-6))
            lr = tr.get_lr(it, cfg)
            t = it + 1
            w = w * (1 - lr * decay)
            mom = cfg.beta1 * mom + (1 - cfg.beta1) * g
            vel = cfg.beta2 * vel + (1 - cfg.beta2) * g * g
            w = w - lr / (1 - cfg.beta1 ** t) * mom / (np.sqrt(vel) / math.sqrt(1 - cfg.beta2 ** t) + 1e-8)
        self.assertGreater(res["grad_norms"][0], cfg.grad_clip)  # clipping was exercised
        np.testing.assert_allclose(res["final_params"], w, rtol=0, atol=1e-12)

    def test_fp32_and_fp64_agree(self):
        cfg = small_cfg()
        a = tr.run_reference(cfg, torch.float32)
        b = tr.run_reference(cfg, torch.float64)
        np.testing.assert_array_equal(a["params0"], b["params0"])
        np.testing.assert_array_equal(a["tokens"], b["tokens"])
        self.assertAlmostEqual(a["loss0"], b["loss0"], delta=1e-5)
        for key in ("logits", "grads"):
            err = np.abs(a[key] - b[key]).max() / np.abs(b[key]).max()
            self.assertLess(err, 1e-5, key)
        for key in ("step_losses_mean", "step_losses_last", "grad_norms"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=key)
        # Adam turns rounding of near-zero gradients into O(lr) steps: compare parameters absolutely
        self.assertLess(np.abs(a["final_params"] - b["final_params"]).max(), 1e-4)
        self.assertEqual(a["lrs"], b["lrs"])


class TestFiles(unittest.TestCase):
    def check_dir(self, out, bias):
        ref = tr.read_reference(out)
        c = ref["config"]
        names = [n for n, _ in c["params"]]
        n = tr.param_count(c["L"], c["C"], c["V"], c["T"], bias)
        self.assertEqual(c["num_params"], n)
        self.assertEqual(os.path.getsize(os.path.join(out, "params.bin")), 4 * n)
        self.assertEqual(os.path.getsize(os.path.join(out, "grads.bin")), 4 * n)
        self.assertEqual(os.path.getsize(os.path.join(out, "final_params.bin")), 4 * n)
        self.assertEqual(os.path.getsize(os.path.join(out, "logits.bin")), 4 * c["B"] * c["T"] * c["Vp"])
        self.assertEqual(c["tokens_shape"], [c["steps"] * c["accum"] + 1, c["B"], c["T"] + 1])
        self.assertEqual(os.path.getsize(os.path.join(out, "tokens.bin")), 4 * math.prod(c["tokens_shape"]))
        self.assertTrue(ref["tokens"].min() >= 0 and ref["tokens"].max() < c["V"])
        # the stored logits give the stored loss, and the numpy forward reproduces the logits from params.bin
        tok = ref["tokens"][0]
        self.assertAlmostEqual(np_loss(ref["logits"].astype(np.float64), tok[:, 1:], c["V"]),
                               ref["results"]["loss0"], delta=1e-5)
        logits = np_forward(ref["params"], c["L"], c["NH"], c["C"], c["V"], c["T"], bias, tok[:, :-1])
        np.testing.assert_allclose(ref["logits"], logits, rtol=0, atol=1e-5)
        r = ref["results"]
        for key in ("step_losses_mean", "step_losses_last", "grad_norms", "lrs"):
            self.assertEqual(len(r[key]), c["steps"])
        return names

    def test_cli_bias(self):
        with tempfile.TemporaryDirectory() as d:
            run_cli(d, "--L", "2", "--NH", "4", "--C", "64", "--V", "101", "--T", "16", "--B", "3", "--bias", "1",
                    "--steps", "3", "--accum", "2", "--warmup", "1", "--decay_iters", "3")
            names = self.check_dir(d, True)
            self.assertEqual(names, [n for n, _ in tr.param_layout(2, 64, 101, 16, True)])
            self.assertEqual(len(names), 16)

    def test_cli_no_bias_writes_no_bias_tensors(self):
        with tempfile.TemporaryDirectory() as d:
            run_cli(d, "--bias", "0", "--steps", "2", "--decay_iters", "4", "--fp64")
            names = self.check_dir(d, False)
            self.assertEqual(names, ["wte", "wpe", "ln1w", "qkvw", "attprojw", "ln2w", "fcw", "fcprojw", "lnfw"])
            with open(os.path.join(d, "config.json")) as f:
                self.assertEqual(json.load(f)["dtype"], "float64")
        m = tr.GPT(2, 4, 64, 101, 16, False)
        self.assertFalse(any(n.endswith("bias") for n, _ in m.named_parameters()))


class TestArchitectureOptions(unittest.TestCase):
    """The reference's options against definitions it does not share code with."""

    def test_rotary_is_a_complex_rotation_by_position(self):
        x = torch.randn(2, 3, 7, 8, dtype=torch.float64)
        got = tr.rotary(x, pos0=4).numpy()
        xn = x.numpy()
        z = xn[..., :4] + 1j * xn[..., 4:]
        theta = (np.arange(4, 11)[:, None] * 10000.0 ** (-np.arange(0, 8, 2) / 8))
        w = z * np.exp(1j * theta)
        np.testing.assert_allclose(got, np.concatenate([w.real, w.imag], -1), rtol=1e-12, atol=1e-12)

    def test_options_layout_count_and_effect(self):
        arch = dict(rotary=True, rmsnorm=True, qk_norm=True, relu2=True, tie=False, softcap=2.0)
        for bias in (True, False):
            m = tr.GPT(2, 2, 8, 13, 5, bias, **arch)
            m.init_weights(1)
            self.assertEqual(sum(p.numel() for p in m.parameters()),
                             tr.param_count(2, 8, 13, 5, bias, **arch))
            names = [n for n, _ in tr.param_layout(2, 8, 13, 5, bias, **arch)]
            self.assertNotIn("wpe", names)
            self.assertNotIn("ln1b", names)
            self.assertEqual(names[-1], "lm_head")
            logits, _ = m(torch.randint(0, 13, (2, 5)))
            self.assertLessEqual(float(logits.abs().max()), 2.0)  # capped
        m = tr.GPT(2, 2, 8, 13, 5, True, tie=False, zero_init=True)
        m.init_weights(1)
        for b in m.h:
            self.assertEqual(float(b.attn.c_proj.weight.abs().sum() + b.mlp.c_proj.weight.abs().sum()), 0)
        self.assertEqual(float(m.lm_head.abs().sum()), 0)
        self.assertGreater(float(m.wte.abs().sum()), 0)


if __name__ == "__main__":
    unittest.main()
