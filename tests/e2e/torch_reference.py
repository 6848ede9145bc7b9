"""PyTorch reference for finegpt's end-to-end parity test (script and module).

It builds GPT-2 the way nanoGPT does (pre-LN blocks, tied head, GELU with the tanh
approximation as llm.c and finegpt use), pads the vocabulary to a multiple of 64
and takes the loss over the first V logits only (llm.c style), then writes
fixtures the C++ trainer must reproduce: initial parameters, tokens, logits,
loss and every gradient for the first micro-batch, and `steps` nanoGPT training
steps (LR schedule, gradient accumulation, clipping, AdamW with decay groups).

It is our own code, not nanoGPT's; it is not a trainer (see bench/ for those).

Files written to --out (all raw, little-endian, no header; config.json says
the shapes and results.json holds the scalars):
  config.json        arguments, Vp, dtype, parameter (name, shape) list in file order
  params.bin         float32, initial parameters flat in llm.c order
  tokens.bin         int32 (steps*accum + 1, B, T+1); batch k: x = [k,:,:T], y = [k,:,1:]
  logits.bin         float32 (B, T, Vp), batch 0, initial parameters
  grads.bin          float32, d loss / d params (loss of batch 0, not divided by accum)
  final_params.bin   float32, parameters after `steps` optimizer steps
  results.json       loss0, step_losses_mean, step_losses_last, grad_norms, lrs
With --fp64 everything is computed in float64 from the same float32 initial
parameters; the .bin files are the float64 values rounded to float32 and
results.json keeps full precision.

Architecture options (finegpt's config keys of the same names, DESIGN.md "Architecture
options"), written here from their definitions, not from finegpt's code:
  --rotary 1      rotary embeddings on q and k (half split, base 10000, angles in float64),
                  no wpe; applied after QK-norm, as modded-nanogpt does
  --rmsnorm 1     RMSNorm x / sqrt(mean(x^2) + 1e-6) * gain in place of LayerNorm, no bias
  --qk_norm 1     parameterless RMSNorm of each head's q and k
  --relu2 1       relu(x)^2 in place of GELU
  --tie 0         a separate lm_head (Vp, C), last in the flat layout
  --zero_init 1   attn.c_proj, mlp.c_proj (and an untied lm_head) start at zero
  --softcap CAP   logits = CAP * tanh(logits / CAP) (over all Vp columns), before the loss

Optimizer (finegpt's optimizer = 'muon'): --muon 1 trains each block's four weight matrices
(c_attn, attn.c_proj, c_fc, mlp.c_proj) with Muon as modded-nanogpt defines it (Nesterov momentum
--muon_momentum, the update orthogonalised by five Newton-Schulz steps with coefficients
(3.4445, -4.7750, 2.0315), scaled by sqrt(max(1, rows / cols)), no weight decay), at
--muon_lr times the schedule's lr / --lr; AdamW (nanoGPT's groups) trains the rest.
--embedding_lr (wte, wpe) and --head_lr (an untied lm_head), when above 0, are those tensors' peak
rates, scheduled as --lr (AdamW groups of their own, the decay rule unchanged).

Usage:
  /usr/bin/python3 tests/e2e/torch_reference.py --out DIR --L 2 --NH 4 --C 64 --V 101 \
      --T 16 --B 3 --bias 1 --steps 10 --lr 1e-3 --wd 0.1 --beta1 0.9 --beta2 0.95 \
      --grad_clip 1.0 --warmup 2 --decay_iters 10 --min_lr 1e-4 --accum 2 --seed 0 --threads 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT_NAME = "finegpt-torchref"
FORMAT_VERSION = 1
LN_EPS = 1e-5
RMS_EPS = 1e-6
ROTARY_BASE = 10000.0
ADAM_EPS = 1e-8
ARCH_KEYS = ("rotary", "rmsnorm", "qk_norm", "relu2", "tie", "zero_init", "softcap")


@dataclasses.dataclass
class RefConfig:
    L: int = 2
    NH: int = 4
    C: int = 64
    V: int = 101
    T: int = 16  # block_size: wpe has T rows and every sequence is T long
    B: int = 3
    bias: bool = True
    steps: int = 10
    lr: float = 1e-3
    wd: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    warmup: int = 2
    decay_iters: int = 10
    min_lr: float = 1e-4
    decay_lr: bool = True
    accum: int = 2
    seed: int = 0
    threads: int = 1
    rotary: bool = False
    rmsnorm: bool = False
    qk_norm: bool = False
    relu2: bool = False
    tie: bool = True
    zero_init: bool = False
    softcap: float = 0.0
    muon: bool = False
    muon_lr: float = 0.02
    muon_momentum: float = 0.95
    embedding_lr: float = 0.0
    head_lr: float = 0.0

    @property
    def Vp(self) -> int:
        return padded_vocab(self.V)

    @property
    def arch(self) -> dict:
        return {k: getattr(self, k) for k in ARCH_KEYS}


def padded_vocab(V: int) -> int:
    return (V + 63) // 64 * 64


# ----------------------------------------------------------------------------- model


class LayerNorm(nn.Module):
    """LayerNorm whose bias can be absent (nn.LayerNorm in torch 1.13 cannot), or RMSNorm with a
    gain (rms=True: x / sqrt(mean(x^2) + eps) * weight, never a bias)."""

    def __init__(self, C: int, bias: bool, rms: bool = False):
        super().__init__()
        self.rms = rms
        self.weight = nn.Parameter(torch.ones(C))
        self.bias = nn.Parameter(torch.zeros(C)) if bias and not rms else None

    def forward(self, x):
        if self.rms:
            return rms_norm(x) * self.weight
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, LN_EPS)


def rms_norm(x):
    """Parameterless RMSNorm over the last dimension."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + RMS_EPS)


def rotary(x, pos0: int = 0):
    """Rotary embedding of x (B, NH, T, HS), half split: the pair (i, i + HS/2) of position
    pos0 + t rotated by (pos0 + t) * base^(-2i/HS); cos and sin from float64 angles."""
    T, HS = x.shape[-2], x.shape[-1]
    half = HS // 2
    inv = ROTARY_BASE ** (-torch.arange(0, half, dtype=torch.float64) * 2.0 / HS)
    ang = torch.arange(pos0, pos0 + T, dtype=torch.float64)[:, None] * inv[None, :]  # (T, half)
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, C: int, NH: int, T: int, bias: bool, rotary: bool = False,
                 qk_norm: bool = False):
        super().__init__()
        assert C % NH == 0
        self.NH, self.rotary, self.qk_norm = NH, rotary, qk_norm
        self.c_attn = nn.Linear(C, 3 * C, bias=bias)
        self.c_proj = nn.Linear(C, C, bias=bias)
        self.register_buffer("mask", torch.tril(torch.ones(T, T, dtype=torch.bool)), persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        HS = C // self.NH
        q, k, v = self.c_attn(x).split(C, dim=2)  # q, k, v in that order
        q = q.view(B, T, self.NH, HS).transpose(1, 2)  # (B, NH, T, HS)
        k = k.view(B, T, self.NH, HS).transpose(1, 2)
        v = v.view(B, T, self.NH, HS).transpose(1, 2)
        if self.qk_norm:
            q, k = rms_norm(q), rms_norm(k)
        if self.rotary:
            q, k = rotary(q), rotary(k)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(HS))  # (B, NH, T, T)
        att = att.masked_fill(~self.mask[:T, :T], float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, C: int, bias: bool, relu2: bool = False):
        super().__init__()
        self.relu2 = relu2
        self.c_fc = nn.Linear(C, 4 * C, bias=bias)
        self.c_proj = nn.Linear(4 * C, C, bias=bias)

    def forward(self, x):
        h = self.c_fc(x)
        h = F.relu(h).square() if self.relu2 else F.gelu(h, approximate="tanh")
        return self.c_proj(h)


class Block(nn.Module):
    def __init__(self, C: int, NH: int, T: int, bias: bool, rotary=False, rmsnorm=False,
                 qk_norm=False, relu2=False):
        super().__init__()
        self.ln_1 = LayerNorm(C, bias, rmsnorm)
        self.attn = CausalSelfAttention(C, NH, T, bias, rotary, qk_norm)
        self.ln_2 = LayerNorm(C, bias, rmsnorm)
        self.mlp = MLP(C, bias, relu2)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-2 with a padded, tied vocabulary; loss over the first V logits; the architecture
    options (ARCH_KEYS) as keyword arguments, all off by default."""

    def __init__(self, L: int, NH: int, C: int, V: int, T: int, bias: bool, rotary=False,
                 rmsnorm=False, qk_norm=False, relu2=False, tie=True, zero_init=False, softcap=0.0):
        super().__init__()
        self.L, self.NH, self.C, self.V, self.T, self.bias = L, NH, C, V, T, bias
        self.arch = dict(rotary=rotary, rmsnorm=rmsnorm, qk_norm=qk_norm, relu2=relu2, tie=tie,
                         zero_init=zero_init, softcap=softcap)
        self.Vp = padded_vocab(V)
        self.wte = nn.Parameter(torch.empty(self.Vp, C))
        self.wpe = None if rotary else nn.Parameter(torch.empty(T, C))
        self.h = nn.ModuleList([Block(C, NH, T, bias, rotary, rmsnorm, qk_norm, relu2) for _ in range(L)])
        self.ln_f = LayerNorm(C, bias, rmsnorm)
        self.lm_head = None if tie else nn.Parameter(torch.empty(self.Vp, C))

    @classmethod
    def from_config(cls, cfg: RefConfig) -> "GPT":
        return cls(cfg.L, cfg.NH, cfg.C, cfg.V, cfg.T, cfg.bias, **cfg.arch)

    def init_weights(self, seed: int) -> None:
        """nanoGPT's init: N(0, 0.02) weights and embeddings, residual projections
        N(0, 0.02/sqrt(2L)), biases 0, LayerNorm 1/0; padded wte rows like the rest.
        The draw order (llm.c order) is ours; the C++ side reads params.bin instead."""
        g = torch.Generator().manual_seed(seed)
        std_res = 0.02 / math.sqrt(2 * self.L)
        with torch.no_grad():
            self.wte.normal_(0.0, 0.02, generator=g)
            if self.wpe is not None:
                self.wpe.normal_(0.0, 0.02, generator=g)
            for b in self.h:
                b.attn.c_attn.weight.normal_(0.0, 0.02, generator=g)
                b.attn.c_proj.weight.normal_(0.0, std_res, generator=g)
                b.mlp.c_fc.weight.normal_(0.0, 0.02, generator=g)
                b.mlp.c_proj.weight.normal_(0.0, std_res, generator=g)
            for m in self.modules():
                if isinstance(m, nn.Linear) and m.bias is not None:
                    m.bias.zero_()
                if isinstance(m, LayerNorm):
                    m.weight.fill_(1.0)
                    if m.bias is not None:
                        m.bias.zero_()
            if self.lm_head is not None:
                self.lm_head.normal_(0.0, 0.02, generator=g)
            if self.arch["zero_init"]:  # modded-nanogpt's: both residual projections and the head
                for b in self.h:
                    b.attn.c_proj.weight.zero_()
                    b.mlp.c_proj.weight.zero_()
                if self.lm_head is not None:
                    self.lm_head.zero_()

    def forward(self, idx, targets=None):
        B, T = idx.shape
        assert T <= self.T
        pos = torch.arange(T, device=idx.device)
        x = F.embedding(idx, self.wte)
        if self.wpe is not None:
            x = x + self.wpe[pos]
        for b in self.h:
            x = b(x)
        x = self.ln_f(x)
        logits = F.linear(x, self.wte if self.lm_head is None else self.lm_head)  # (B, T, Vp)
        cap = self.arch["softcap"]
        if cap > 0:
            logits = cap * torch.tanh(logits / cap)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits[..., : self.V].reshape(-1, self.V), targets.reshape(-1))
        return logits, loss


# ----------------------------------------------------------------------------- llm.c layout


def param_layout(L: int, C: int, V: int, T: int, bias: bool, rotary=False, rmsnorm=False, tie=True,
                 **_):
    """[(name, shape)] of the parameter tensors in llm.c file order, then an untied lm_head; wpe
    absent with rotary, the LayerNorm biases with RMSNorm."""
    Vp = padded_vocab(V)
    full = [
        ("wte", (Vp, C)), ("wpe", (T, C)),
        ("ln1w", (L, C)), ("ln1b", (L, C)),
        ("qkvw", (L, 3 * C, C)), ("qkvb", (L, 3 * C)),
        ("attprojw", (L, C, C)), ("attprojb", (L, C)),
        ("ln2w", (L, C)), ("ln2b", (L, C)),
        ("fcw", (L, 4 * C, C)), ("fcb", (L, 4 * C)),
        ("fcprojw", (L, C, 4 * C)), ("fcprojb", (L, C)),
        ("lnfw", (C,)), ("lnfb", (C,)), ("lm_head", (Vp, C)),
    ]
    bias_names = {"ln1b", "qkvb", "attprojb", "ln2b", "fcb", "fcprojb", "lnfb"}
    absent = set() if bias else set(bias_names)
    if rmsnorm:
        absent |= {"ln1b", "ln2b", "lnfb"}
    if rotary:
        absent.add("wpe")
    if tie:
        absent.add("lm_head")
    return [(n, s) for n, s in full if n not in absent]


def param_count(L: int, C: int, V: int, T: int, bias: bool, rotary=False, rmsnorm=False, tie=True,
                **_) -> int:
    """Analytic count, padded vocabulary included."""
    per_layer = 2 * C + 12 * C * C  # ln_1, ln_2 weights; qkv 3CC + proj CC + fc 4CC + fcproj 4CC
    if bias:
        per_layer += 3 * C + C + 4 * C + C  # qkv, proj, fc, fcproj
        if not rmsnorm:
            per_layer += 2 * C  # ln biases
    final = 2 * C if bias and not rmsnorm else C
    return (padded_vocab(V) * C * (1 if tie else 2) + (0 if rotary else T * C) + L * per_layer
            + final)


def _llmc_sources(model: GPT):
    """[(name, [parameters])] in llm.c order; a per-layer tensor lists one parameter per layer."""
    per_layer = {
        "ln1w": lambda b: b.ln_1.weight, "ln1b": lambda b: b.ln_1.bias,
        "qkvw": lambda b: b.attn.c_attn.weight, "qkvb": lambda b: b.attn.c_attn.bias,
        "attprojw": lambda b: b.attn.c_proj.weight, "attprojb": lambda b: b.attn.c_proj.bias,
        "ln2w": lambda b: b.ln_2.weight, "ln2b": lambda b: b.ln_2.bias,
        "fcw": lambda b: b.mlp.c_fc.weight, "fcb": lambda b: b.mlp.c_fc.bias,
        "fcprojw": lambda b: b.mlp.c_proj.weight, "fcprojb": lambda b: b.mlp.c_proj.bias,
    }
    whole = {"wte": lambda: model.wte, "wpe": lambda: model.wpe,
             "lnfw": lambda: model.ln_f.weight, "lnfb": lambda: model.ln_f.bias,
             "lm_head": lambda: model.lm_head}
    out = []
    for name, _ in param_layout(model.L, model.C, model.V, model.T, model.bias, **model.arch):
        if name in whole:
            out.append((name, [whole[name]()]))
        else:
            out.append((name, [per_layer[name](b) for b in model.h]))
    return out


def llmc_tensors(model: GPT, grads: bool = False):
    """The model's parameters (or their gradients) in llm.c order, per-layer ones stacked (copies)."""

    def get(p):
        if not grads:
            return p.detach()
        return p.grad.detach() if p.grad is not None else torch.zeros_like(p)

    out = []
    for name, ps in _llmc_sources(model):
        whole = name in ("wte", "wpe", "lnfw", "lnfb", "lm_head")
        out.append(get(ps[0]) if whole else torch.stack([get(p) for p in ps]))
    return out


def llmc_flat(model: GPT, grads: bool = False) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in llmc_tensors(model, grads)])


def load_llmc_flat(model: GPT, flat) -> None:
    """Set the model's parameters from a flat vector in llm.c order."""
    flat = torch.as_tensor(np.asarray(flat))
    layout = param_layout(model.L, model.C, model.V, model.T, model.bias, **model.arch)
    assert flat.numel() == sum(math.prod(s) for _, s in layout), "flat size does not match the layout"
    with torch.no_grad():
        off = 0
        for (name, shape), (_, ps) in zip(layout, _llmc_sources(model)):
            for p in ps:
                n = p.numel()
                p.copy_(flat[off: off + n].view(p.shape).to(p.dtype))
                off += n


# ----------------------------------------------------------------------------- training


def get_lr(it: int, cfg: RefConfig) -> float:
    """nanoGPT's get_lr (Dec 2024 form): linear warmup to lr, cosine to min_lr."""
    if not cfg.decay_lr:
        return cfg.lr
    if it < cfg.warmup:
        return cfg.lr * (it + 1) / (cfg.warmup + 1)
    if it > cfg.decay_iters:
        return cfg.min_lr
    ratio = (it - cfg.warmup) / (cfg.decay_iters - cfg.warmup)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    return cfg.min_lr + coeff * (cfg.lr - cfg.min_lr)


def make_tokens(cfg: RefConfig) -> torch.Tensor:
    """(steps*accum + 1, B, T+1) int64 tokens in [0, V) from a Generator seeded by seed."""
    g = torch.Generator().manual_seed(cfg.seed)
    return torch.randint(0, cfg.V, (cfg.steps * cfg.accum + 1, cfg.B, cfg.T + 1), generator=g)


def make_optimizer(model: nn.Module, cfg: RefConfig, exclude=(), **extra) -> torch.optim.AdamW:
    """nanoGPT's configure_optimizers: decay every parameter with dim >= 2, none else (those in
    `exclude`, Muon's, left out)."""
    skip = {id(p) for p in exclude}
    params = [p for p in model.parameters() if p.requires_grad and id(p) not in skip]
    # Each group's peak rate as a multiple of --lr ("scale"; the loop sets lr = scale * scheduled).
    own = {}
    if cfg.embedding_lr > 0:
        for p in (model.wte, model.wpe):
            if p is not None:
                own[id(p)] = cfg.embedding_lr / cfg.lr
    if cfg.head_lr > 0 and model.lm_head is not None:
        own[id(model.lm_head)] = cfg.head_lr / cfg.lr
    groups = []
    for scale in sorted(set(own.values()) | {1.0}):
        mine = [p for p in params if own.get(id(p), 1.0) == scale]
        groups += [
            {"params": [p for p in mine if p.dim() >= 2], "weight_decay": cfg.wd, "scale": scale},
            {"params": [p for p in mine if p.dim() < 2], "weight_decay": 0.0, "scale": scale},
        ]
    groups = [g for g in groups if g["params"]]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=ADAM_EPS, **extra)


NS_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz(u: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """The approximately orthogonal factor of u (Muon's zeroth power), in u's dtype."""
    a, b, c = NS_COEFFS
    x = u / (torch.linalg.matrix_norm(u) + 1e-7)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    for _ in range(steps):
        A = x @ x.T
        B = b * A + c * (A @ A)
        x = a * x + B @ x
    return x.T if tall else x


class Muon:
    """Muon on 2-D parameters: buf = m buf + (1 - m) g; u = (1 - m) g + m buf (Nesterov);
    p -= lr sqrt(max(1, rows / cols)) newton_schulz(u)."""

    def __init__(self, params, momentum: float):
        self.params = list(params)
        self.momentum = momentum
        self.bufs = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, lr: float) -> None:
        m = self.momentum
        for p, buf in zip(self.params, self.bufs):
            g = p.grad
            buf.mul_(m).add_(g, alpha=1 - m)
            u = g * (1 - m) + buf * m
            scale = max(1.0, p.shape[0] / p.shape[1]) ** 0.5
            p.sub_(newton_schulz(u), alpha=lr * scale)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


def muon_matrices(model: "GPT"):
    return [w for b in model.h for w in (b.attn.c_attn.weight, b.attn.c_proj.weight,
                                         b.mlp.c_fc.weight, b.mlp.c_proj.weight)]


def grad_norm_and_clip(model: nn.Module, grad_clip: float) -> float:
    """Global L2 norm before clipping; clips as torch.nn.utils.clip_grad_norm_ when grad_clip != 0
    (scale = min(1, grad_clip / (norm + 1e-6)), applied always)."""
    params = [p for p in model.parameters() if p.grad is not None]
    if grad_clip != 0.0:
        return float(torch.nn.utils.clip_grad_norm_(params, grad_clip))
    return float(torch.norm(torch.stack([torch.norm(p.grad.detach(), 2) for p in params]), 2))


def run_reference(cfg: RefConfig, dtype=torch.float32) -> dict:
    """Everything the files hold, as numpy arrays and floats (arrays in the compute dtype)."""
    torch.set_num_threads(cfg.threads)
    model = GPT.from_config(cfg)
    model.init_weights(cfg.seed)  # always in float32, so fp32 and fp64 runs start identical
    params0 = llmc_flat(model).numpy().copy()
    model = model.to(dtype)
    tokens = make_tokens(cfg)

    def batch(k):
        return tokens[k, :, : cfg.T], tokens[k, :, 1:]

    # batch 0 with the initial parameters
    x, y = batch(0)
    logits, loss = model(x, y)
    loss.backward()
    out = {
        "params0": params0,
        "tokens": tokens.numpy().astype(np.int32),
        "logits": logits.detach().numpy().copy(),
        "loss0": float(loss),
        "grads": llmc_flat(model, grads=True).numpy().copy(),
    }
    model.zero_grad(set_to_none=True)

    muon = Muon(muon_matrices(model), cfg.muon_momentum) if cfg.muon else None
    opt = make_optimizer(model, cfg, exclude=muon.params if muon else (), foreach=False)
    losses_mean, losses_last, norms, lrs = [], [], [], []
    k = 0
    for it in range(cfg.steps):
        lr = get_lr(it, cfg)
        for group in opt.param_groups:
            group["lr"] = lr * group["scale"]
        micro = []
        for _ in range(cfg.accum):
            x, y = batch(k)
            k += 1
            _, loss = model(x, y)
            micro.append(float(loss))
            (loss / cfg.accum).backward()
        norms.append(grad_norm_and_clip(model, cfg.grad_clip))
        opt.step()
        opt.zero_grad(set_to_none=True)
        if muon:
            muon.step(cfg.muon_lr * lr / cfg.lr)
            muon.zero_grad()
        losses_mean.append(sum(micro) / len(micro))
        losses_last.append(micro[-1])
        lrs.append(lr)
    out.update(step_losses_mean=losses_mean, step_losses_last=losses_last, grad_norms=norms, lrs=lrs,
               final_params=llmc_flat(model).numpy().copy())
    return out


# ----------------------------------------------------------------------------- files


def _write_f32(path, a):
    np.ascontiguousarray(a, dtype="<f4").tofile(path)


def write_reference(out_dir: str, cfg: RefConfig, res: dict, dtype_name: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    layout = param_layout(cfg.L, cfg.C, cfg.V, cfg.T, cfg.bias, **cfg.arch)
    config = dict(dataclasses.asdict(cfg))
    config.update(
        format=FORMAT_NAME, version=FORMAT_VERSION, Vp=cfg.Vp, dtype=dtype_name,
        num_params=param_count(cfg.L, cfg.C, cfg.V, cfg.T, cfg.bias, **cfg.arch),
        tokens_shape=list(res["tokens"].shape), logits_shape=[cfg.B, cfg.T, cfg.Vp],
        ln_eps=LN_EPS, adam_eps=ADAM_EPS, gelu="tanh",
    )
    text = json.dumps(config, indent=1)  # then "params": [[name, shape], ...], one tensor a line
    rows = ",\n".join("  " + json.dumps([n, list(s)]) for n, s in layout)
    text = text[: text.rindex("}")].rstrip() + ',\n "params": [\n' + rows + "\n ]\n}\n"
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(text)
    _write_f32(os.path.join(out_dir, "params.bin"), res["params0"])
    np.ascontiguousarray(res["tokens"], dtype="<i4").tofile(os.path.join(out_dir, "tokens.bin"))
    _write_f32(os.path.join(out_dir, "logits.bin"), res["logits"])
    _write_f32(os.path.join(out_dir, "grads.bin"), res["grads"])
    _write_f32(os.path.join(out_dir, "final_params.bin"), res["final_params"])
    results = {key: res[key] for key in ("loss0", "step_losses_mean", "step_losses_last", "grad_norms", "lrs")}
    results["dtype"] = dtype_name
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


def read_reference(out_dir: str) -> dict:
    """Read a directory written by write_reference back (float32 arrays, shaped)."""
    with open(os.path.join(out_dir, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(out_dir, "results.json")) as f:
        results = json.load(f)

    def f32(name, shape=None):
        a = np.fromfile(os.path.join(out_dir, name), dtype="<f4")
        return a.reshape(shape) if shape is not None else a

    return {
        "config": config,
        "results": results,
        "params": f32("params.bin"),
        "tokens": np.fromfile(os.path.join(out_dir, "tokens.bin"), dtype="<i4").reshape(config["tokens_shape"]),
        "logits": f32("logits.bin", config["logits_shape"]),
        "grads": f32("grads.bin"),
        "final_params": f32("final_params.bin"),
    }


def split_flat(flat, layout):
    """{name: array of shape} views of a flat llm.c-order vector."""
    out, off = {}, 0
    for name, shape in layout:
        n = math.prod(shape)
        out[name] = flat[off: off + n].reshape(shape)
        off += n
    assert off == len(flat)
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output directory")
    d = RefConfig()
    for f in dataclasses.fields(RefConfig):
        kind = {"int": int, "float": float, "bool": int}[f.type]
        p.add_argument("--" + f.name, type=kind, default=getattr(d, f.name))
    p.add_argument("--fp64", action="store_true", help="compute in float64 (files still float32)")
    a = p.parse_args(argv)
    cfg = RefConfig(**{f.name: (bool(getattr(a, f.name)) if f.type == "bool" else getattr(a, f.name))
                       for f in dataclasses.fields(RefConfig)})
    if cfg.C % cfg.NH != 0:
        p.error(f"--C {cfg.C} is not a multiple of --NH {cfg.NH}")
    if cfg.rotary and (cfg.C // cfg.NH) % 2:
        p.error("--rotary needs an even head size")
    if cfg.decay_lr and cfg.decay_iters <= cfg.warmup:
        p.error(f"--decay_iters {cfg.decay_iters} must exceed --warmup {cfg.warmup}")
    return a.out, cfg, a.fp64


def main(argv=None) -> int:
    out_dir, cfg, fp64 = parse_args(argv)
    dtype = torch.float64 if fp64 else torch.float32
    res = run_reference(cfg, dtype)
    write_reference(out_dir, cfg, res, "float64" if fp64 else "float32")
    print(json.dumps({"out": out_dir, "dtype": str(dtype), "loss0": res["loss0"],
                      "final_loss": res["step_losses_mean"][-1] if res["step_losses_mean"] else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
