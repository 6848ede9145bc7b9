"""Hostile input to every subcommand (issue #13): a table of cases, each a setup that writes its
inputs into a fresh folder, a command line, and the words its error must say. Every case must
end with a non-zero exit status that is not a signal, a message of at most three lines on stderr
naming the problem, no crash report, and every file it could touch unchanged (sha256 of every
file under its folder and of the shared inputs, before and after), with no file left behind.

The shared inputs (a char dataset, a checkpoint trained for a few iterations, its llm.c and
Hugging Face exports)
are made once in setUpClass; a case that damages one works on its own copy.
"""
import collections
import hashlib
import json
import math
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from finegpt_testing import FINEGPT, SHAKESPEARE, write_shard  # noqa: E402

# finegpt on the host emulation of the CUDA seam (tests/emulation/), for cases that need the CUDA
# engine (optimizer offload, the device memory cap) on a machine without a GPU.
EMULATED = os.environ.get("FINEGPT_EMULATED_BIN", "")

CRASH_WORDS = ("Sanitizer", "terminate called", "Segmentation fault", "Traceback", "core dumped",
               "Assertion", "runtime error:", "what():")
MAX_LINES = 3
MAX_CHARS = 400  # besides the case's folder named twice


# ---- inputs a case can write (d: the case's folder, s: the shared inputs) ------------------------

def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


def text(name, data):
    return lambda d, s: write(os.path.join(d, name), data)


def folder(name):
    return lambda d, s: os.makedirs(os.path.join(d, name))


def steps(*fns):
    def run_all(d, s):
        for f in fns:
            f(d, s)
    return run_all


def copy_out(name="out"):
    """The shared trained out_dir, copied to d/<name>."""
    return lambda d, s: shutil.copytree(s.out, os.path.join(d, name))


def trained_with(name, *options):
    """A model trained for one step with architecture options on the shared data, in d/<name>."""
    def run_train(d, s):
        subprocess.run([FINEGPT, "train", f"--data_dir={s.chars}", f"--out_dir={os.path.join(d, name)}",
                        *TINY[:6], "--max_iters=1", "--eval_interval=1", *TINY[7:], *options],
                       check=True, capture_output=True, timeout=120)
    return run_train


def copy_model(name="m.bin"):
    return lambda d, s: shutil.copyfile(s.model, os.path.join(d, name))


def patch(name, fn):
    """Rewrites d/<name> as fn(bytes) -> bytes."""
    def run_patch(d, s):
        path = os.path.join(d, name)
        with open(path, "rb") as f:
            data = bytearray(f.read())
        data = fn(data)
        with open(path, "wb") as f:
            f.write(data)
    return run_patch


def flip(offset):
    """Two flipped bits at offset (negative: from the end)."""
    def run_flip(b):
        b[offset] ^= 0x10
        b[offset + 1 if offset != -1 else offset] ^= 0x01
        return b
    return run_flip


def truncate(keep):
    return lambda b: b[:keep] if keep >= 0 else b[:len(b) + keep]


def ckpt_layout(b):
    header_len = struct.unpack_from("<Q", b, 8)[0]
    params_at = (16 + header_len + 63) // 64 * 64
    return header_len, params_at


def params_flip(b):
    _, params_at = ckpt_layout(b)
    return flip(params_at + 1001)(b)


def header_flip(b):
    header_len, _ = ckpt_layout(b)
    return flip(16 + header_len // 2)(b)


def nan_params_ckpt(b):
    """A NaN in the parameters, with every checksum made right again: intact, not finite."""
    header_len, params_at = ckpt_layout(b)
    num_params = json.loads(bytes(b[16:16 + header_len]))["num_params"]
    struct.pack_into("<f", b, params_at + 4 * 7, math.nan)
    params_crc = zlib.crc32(bytes(b[params_at:params_at + 4 * num_params]))
    struct.pack_into("<I", b, len(b) - 8, params_crc)  # trailer: magic, header, params, moments
    return b


def nan_params_llmc(b):
    struct.pack_into("<f", b, 1024 + 4 * 5, math.inf)
    return b


def llmc_header(**fields):
    """An llm.c model file's header with some fields replaced (no parameters after it)."""
    def run_header(b):
        order = ["magic", "version", "maxT", "V", "L", "NH", "C", "Vp"]
        for k, v in fields.items():
            struct.pack_into("<i", b, 4 * order.index(k), v)
        return b
    return run_header


def shard(name, tokens=range(100), magic=20240520, version=1, count=None, cut=0):
    def run_shard(d, s):
        path = os.path.join(d, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_shard(path, list(tokens))
        with open(path, "r+b") as f:
            f.write(struct.pack("<iii", magic, version, len(tokens) if count is None else count))
            if cut:
                f.truncate(os.path.getsize(path) - cut)
    return run_shard


def parquet(name, columns):
    def run_parquet(d, s):
        import pyarrow as pa
        import pyarrow.parquet as pq
        table = pa.table({k: pa.array(v, type=pa.string()) for k, v in columns.items()})
        pq.write_table(table, os.path.join(d, name))
    return run_parquet


def unix_socket(name):
    def run_socket(d, s):
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(os.path.join(d, name))
        sock.close()  # the socket file stays; nobody listens
    return run_socket


def symlink(target, name):
    return lambda d, s: os.symlink(target.format(d=d, **s._asdict()), os.path.join(d, name))


def hardlink(target, name):
    return lambda d, s: os.link(target.format(d=d, **s._asdict()), os.path.join(d, name))


def prepared(name):
    """A finished char prepare of a small text into d/<name> (its own run's shards)."""
    def run_prepare(d, s):
        src = os.path.join(d, "small.txt")
        write(src, "To be, or not to be, that is the question.\n" * 20)
        subprocess.run([FINEGPT, "prepare", "--tokenizer", "char", "--input", src, "--out",
                        os.path.join(d, name), "--quiet"], check=True, capture_output=True)
    return run_prepare


def copy_hf(name="hf"):
    """The shared Hugging Face export of the trained model, copied to d/<name>."""
    return lambda d, s: shutil.copytree(s.hf, os.path.join(d, name))


def safetensors_edit(fn):
    """Rewrites a safetensors file (written here by struct and json, not by finegpt's reader):
    fn(header dict, {name: bytes}) may change the header and the tensors' bytes; the offsets
    are laid out again in order unless fn returns False (then the header is written as fn left
    it, offsets and all)."""
    def run_edit(b):
        n = struct.unpack_from("<Q", b, 0)[0]
        header = json.loads(bytes(b[8:8 + n]))
        data = bytes(b[8 + n:])
        blobs = {k: data[v["data_offsets"][0]:v["data_offsets"][1]]
                 for k, v in header.items() if k != "__metadata__"}
        relayout = fn(header, blobs) is not False
        out = b""
        if relayout:
            for k in sorted((k for k in header if k != "__metadata__"),
                            key=lambda k: header[k]["data_offsets"][0]):
                header[k]["data_offsets"] = [len(out), len(out) + len(blobs[k])]
                out += blobs[k]
        else:
            out = data
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        return bytearray(struct.pack("<Q", len(text)) + text + out)
    return run_edit


def st_drop(name):
    def run(h, blobs):
        del h[name], blobs[name]
    return safetensors_edit(run)


def st_shape(name, shape):
    def run(h, blobs):
        h[name]["shape"] = shape
    return safetensors_edit(run)


def st_offsets(name, shift_begin, shift_end):
    """The header lies: one tensor's offsets moved (the data stays where it is)."""
    def run(h, blobs):
        o = h[name]["data_offsets"]
        h[name]["data_offsets"] = [o[0] + shift_begin, o[1] + shift_end]
        return False
    return safetensors_edit(run)


def st_add(name, shape, fill):
    def run(h, blobs):
        count = 1
        for dim in shape:
            count *= dim
        h[name] = {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}
        h[name]["data_offsets"] = [10**12, 10**12]  # placed last by the relayout
        blobs[name] = struct.pack(f"<{count}f", *([fill] * count))
    return safetensors_edit(run)


def json_edit(fn):
    def run(b):
        j = json.loads(bytes(b))
        fn(j)
        return bytearray(json.dumps(j).encode())
    return run


# ---- the table -----------------------------------------------------------------------------------

# may_change: paths under the case's folder that the command may write (a log), by prefix.
# env: more environment; emulated: run finegpt_emulated (the CUDA engine without a GPU).
Case = collections.namedtuple("Case", "name argv words setup may_change env emulated",
                              defaults=(None, (), None, False))
CASES = []


def case(name, argv, words, setup=None, may_change=(), env=None, emulated=False):
    CASES.append(Case(name, list(argv), list(words), setup, tuple(may_change), env, emulated))


TINY = ["--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4",
        "--max_iters=2", "--eval_interval=2", "--eval_iters=1", "--device=cpu"]

# train: configuration files
case("train_config_syntax_error", ["train", "{d}/c.py", "--dry_run"], ["c.py:2"],
     text("c.py", "n_layer = 4\nbatch_size = = 3\n"))
case("train_config_unknown_key_suggests", ["train", "{d}/c.py", "--dry_run"],
     ["c.py:1", "lerning_rate", "learning_rate"], text("c.py", "lerning_rate = 1e-3\n"))
case("train_config_wrong_type", ["train", "{d}/c.py", "--dry_run"], ["c.py:1", "n_layer", "int"],
     text("c.py", "n_layer = 'four'\n"))
case("train_config_bom_then_unknown_key", ["train", "{d}/c.py", "--dry_run"],
     ["c.py:1", "learning_rate"], text("c.py", b"\xef\xbb\xbflerning_rate = 1e-3\n"))
case("train_config_non_ascii_name", ["train", "{d}/c.py", "--dry_run"], ["c.py:1", "non-ASCII"],
     text("c.py", "n_lay\u00e9r = 3\n"))
case("train_config_is_a_folder", ["train", "{d}/c.py", "--dry_run"], ["c.py", "is a directory"],
     folder("c.py"))
case("train_config_missing", ["train", "{d}/none.py", "--dry_run"], ["none.py", "not found"])
case("train_config_binary_garbage", ["train", "{d}/c.py", "--dry_run"], ["c.py:1"],
     text("c.py", bytes(range(256)) * 4))
case("train_config_device_node", ["train", "/dev/zero", "--dry_run"], ["/dev/zero", "not a file"])
case("train_config_empty_file_no_data", ["train", "{d}/c.py", "--out_dir={d}/o"],
     ["openwebtext"], text("c.py", ""))
case("train_config_nested_too_deeply", ["train", "{d}/c.py", "--dry_run"],
     ["c.py:1", "nested too deeply"],
     text("c.py", "n_layer = " + "(" * 100000 + "1" + ")" * 100000 + "\n"))
case("train_config_sign_chain", ["train", "{d}/c.py", "--dry_run"],
     ["c.py:1", "nested too deeply"], text("c.py", "n_layer = " + "-" * 100000 + "1\n"))
case("train_flag_value_pages_long", ["train", "--n_layer=" + "(" * 5000 + "1" + ")" * 5000,
                                     "--dry_run"], ["n_layer", "10003 characters"])
case("train_int_past_64_bits", ["train", "{d}/c.py", "--dry_run"],
     ["c.py:1", "99999999999999999999", "64-bit"],
     text("c.py", "n_layer = 99999999999999999999\n"))
case("train_int_past_32_bits", ["train", "--batch_size=2147483648", "--dry_run"],
     ["batch_size", "past the largest value"])
case("train_threads_past_32_bits", ["train", "--threads=2**40", "--dry_run"],
     ["threads", "past the largest value"])
case("train_negative_block_size", ["train", "--block_size=-1", "--dry_run"],
     ["block_size", "at least 1"])
case("train_zero_layers", ["train", "--n_layer=0", "--dry_run"], ["n_layer", "at least 1"])
case("train_negative_threads", ["train", "--threads=-4", "--dry_run"], ["threads", ">= 0"])
case("train_nan_learning_rate", ["train", "{d}/c.py", "--dry_run"], ["learning_rate", "nan"],
     text("c.py", "learning_rate = float('nan')\n"))
case("train_inf_min_lr", ["train", "--min_lr=1e999", "--dry_run"], ["min_lr", "finite", "inf"])
case("train_inf_dist_timeout", ["train", "--dist_timeout=float('inf')", "--dry_run"],
     ["dist_timeout", "finite"])
case("train_embd_not_divisible_by_heads", ["train", "--n_embd=100", "--n_head=3", "--dry_run"],
     ["n_embd (100)", "divisible by n_head (3)"])
case("train_model_past_any_memory", ["train", "--n_embd=2147483646", "--n_head=2",
                                     "--n_layer=2147483647", "--dry_run"], ["too large", "2^40"])
case("train_block_size_past_any_memory", ["train", "--block_size=134217728", "--device=cpu",
                                          "--dry_run"], ["too large", "att"])
case("train_device_tpu", ["train", "--device=tpu", "--dry_run"], ["device='tpu'"])
case("train_attention_x", ["train", "--attention=x", "--dry_run"], ["attention", "'x'"])
case("train_offload_x", ["train", "--offload=gpu", "--dry_run"], ["offload", "'gpu'", "optimizer"])
# Optimizer offload on the CUDA engine (emulated): too little host memory for the pinned state is
# refused before anything is allocated, naming both sizes; a device memory cap the model does not
# fit stops at the allocation that passes it; a cap that is not a size is named.
GPU_TINY = ["--n_layer=1", "--n_head=2", "--n_embd=64", "--block_size=32", "--batch_size=4",
            "--max_iters=2", "--eval_interval=2", "--eval_iters=1", "--device=cuda"]
case("train_offload_host_memory_short",
     ["train", "--data_dir={s_chars}", "--out_dir={d}/o", "--offload=optimizer", *GPU_TINY,
      "--n_embd=128"],
     ["offload", "pinned host memory", "2.90 MiB", "1.00 MiB", "available"],  # 14 x 217,472
     env={"FINEGPT_HOST_MEMORY": "1MB"}, emulated=True)
case("train_device_memory_cap_passed",
     ["train", "--data_dir={s_chars}", "--out_dir={d}/o", *GPU_TINY],
     ["FINEGPT_DEVICE_MEMORY_CAP", "65536", "asked for"],
     env={"FINEGPT_DEVICE_MEMORY_CAP": "64KiB"}, emulated=True)
case("train_device_memory_cap_not_a_size",
     ["train", "--data_dir={s_chars}", "--out_dir={d}/o", *GPU_TINY],
     ["FINEGPT_DEVICE_MEMORY_CAP", "'lots'"], env={"FINEGPT_DEVICE_MEMORY_CAP": "lots"},
     emulated=True)
case("train_norm_unknown", ["train", "--norm=batchnorm", "--dry_run"], ["norm", "'batchnorm'"])
case("train_mlp_activation_unknown", ["train", "--mlp_activation=swiglu", "--dry_run"],
     ["mlp_activation", "'swiglu'", "'relu2'"])
case("train_logit_softcap_negative", ["train", "--logit_softcap=-30", "--dry_run"],
     ["logit_softcap", ">= 0"])
case("train_rotary_odd_head_size", ["train", "--rotary=True", "--n_embd=36", "--n_head=4",
                                    "--dry_run"], ["rotary", "even head size"])
case("train_rotary_from_gpt2", ["train", "--init_from=gpt2", "--rotary=True", "--dry_run"],
     ["init_from = 'gpt2'", "rotary = True", "init_from = 'scratch'"])
case("train_untied_from_llmc_model", ["train", "--init_from={d}/m.bin", "--tie_embeddings=False",
                                      "--dry_run"], ["m.bin", "tie_embeddings = False"],
     copy_model())
case("train_optimizer_unknown", ["train", "--optimizer=sgd", "--dry_run"],
     ["optimizer", "'sgd'", "'adamw'", "'muon'"])
case("train_muon_momentum_one", ["train", "--optimizer=muon", "--muon_momentum=1.0", "--dry_run"],
     ["muon_momentum", "[0, 1)"])
case("train_muon_lr_zero", ["train", "--optimizer=muon", "--muon_lr=0", "--dry_run"],
     ["muon_lr", "positive"])
case("train_muon_learning_rate_zero", ["train", "--optimizer=muon", "--learning_rate=0",
                                       "--dry_run"], ["optimizer = 'muon'", "learning_rate > 0"])
case("train_muon_offload", ["train", "--optimizer=muon", "--offload=optimizer", "--dry_run"],
     ["optimizer = 'muon'", "offload = 'optimizer'"])
case("train_embedding_lr_negative", ["train", "--embedding_lr=-0.1", "--dry_run"],
     ["embedding_lr", "0 or more", "-0.1"])
case("train_head_lr_tied", ["train", "--head_lr=0.01", "--dry_run"],
     ["head_lr", "tie_embeddings = False"])
case("train_modern_tied", ["train", "--recipe=modern", "--tie_embeddings=True", "--dry_run"],
     ["head_lr", "tie_embeddings = False", "head_lr = None"])
case("train_head_lr_learning_rate_zero", ["train", "--tie_embeddings=False", "--head_lr=0.01",
                                          "--learning_rate=0", "--dry_run"],
     ["head_lr", "learning_rate > 0"])
case("train_dtype_int8", ["train", "--dtype=int8", "--dry_run"], ["dtype", "int8"])
case("train_data_order_bad", ["train", "--data_order=shuffled", "--dry_run"],
     ["data_order", "shuffled"])
case("train_unknown_flag_suggests", ["train", "--n_layers=3", "--dry_run"],
     ["n_layers", "did you mean 'n_layer'"])
case("train_flag_without_value", ["train", "--n_layer", "--dry_run"], ["--n_layer", "value"])

# train: data
case("train_missing_data_dir", ["train", "--data_dir={d}/nowhere", "--out_dir={d}/o", *TINY],
     ["nowhere"])
case("train_empty_train_shard", ["train", "--data_dir={d}/data", "--out_dir={d}/o", *TINY],
     ["x_train_000001.bin", "empty"],
     steps(shard("data/x_val_000000.bin"), text("data/x_train_000001.bin", b"")))
case("train_shard_bad_magic", ["train", "--data_dir={d}/data", "--out_dir={d}/o", *TINY],
     ["x_train_000001.bin", "magic"],
     steps(shard("data/x_val_000000.bin"), shard("data/x_train_000001.bin", magic=1234)))
case("train_shard_bad_version", ["train", "--data_dir={d}/data", "--out_dir={d}/o", *TINY],
     ["x_train_000001.bin", "version 7"],
     steps(shard("data/x_val_000000.bin"), shard("data/x_train_000001.bin", version=7)))
case("train_shard_truncated", ["train", "--data_dir={d}/data", "--out_dir={d}/o", *TINY],
     ["x_train_000001.bin", "header says 100 tokens"],
     steps(shard("data/x_val_000000.bin"), shard("data/x_train_000001.bin", cut=51)))
case("train_val_shard_missing", ["train", "--data_dir={d}/data", "--out_dir={d}/o", *TINY],
     ["data", "'val'"], shard("data/x_train_000001.bin", range(1000)))
case("train_data_past_the_vocabulary", ["train", "--data_dir={s_chars}", "--out_dir={d}/o",
                                        "--vocab_size=16", *TINY], ["vocab"])
case("train_block_size_past_the_model", ["train", "--data_dir={s_chars}", "--out_dir={d}/o",
                                         "--init_from={s_model}", *TINY[:3],
                                         "--block_size=64", *TINY[4:]],
     ["block_size"])
case("train_resume_flipped_parameters", ["train", "--data_dir={s_chars}", "--out_dir={d}/out",
                                         "--init_from=resume", *TINY[:7], "--max_iters=8"],
     ["{d}/out/ckpt.bin", "parameters fail their checksum"],
     steps(copy_out(), patch("out/ckpt.bin", params_flip)))
case("train_resume_flipped_header", ["train", "--data_dir={s_chars}", "--out_dir={d}/out",
                                     "--init_from=resume", *TINY[:7], "--max_iters=8"],
     ["{d}/out/ckpt.bin", "header fails its checksum"],
     steps(copy_out(), patch("out/ckpt.bin", header_flip)))
# The header's first byte ('{') flipped: the JSON no longer parses, and the checksum says why
# (where the flip lands inside the header depends on its text, so header_flip may leave valid JSON).
case("train_resume_header_not_json", ["train", "--data_dir={s_chars}", "--out_dir={d}/out",
                                      "--init_from=resume", *TINY[:7], "--max_iters=8"],
     ["{d}/out/ckpt.bin", "header fails its checksum"],
     steps(copy_out(), patch("out/ckpt.bin", flip(16))))
case("train_resume_truncated", ["train", "--data_dir={s_chars}", "--out_dir={d}/out",
                                "--init_from=resume", *TINY[:7], "--max_iters=8"],
     ["{d}/out/ckpt.bin", "truncated"], steps(copy_out(), patch("out/ckpt.bin", truncate(-100))))
case("train_resume_nan_parameters", ["train", "--data_dir={s_chars}", "--out_dir={d}/out",
                                     "--init_from=resume", *TINY[:7], "--max_iters=8"],
     ["{d}/out/ckpt.bin", "non-finite parameters"],
     steps(copy_out(), patch("out/ckpt.bin", nan_params_ckpt)))
case("train_diverging_resume_keeps_the_checkpoint",
     ["train", "--data_dir={s_chars}", "--out_dir={d}/out", "--init_from=resume", *TINY[:5],
      "--eval_iters=1", "--device=cpu", "--max_iters=40", "--eval_interval=100",
      "--learning_rate=1e30", "--grad_clip=0", "--decay_lr=False", "--always_save_checkpoint=True"],
     ["training diverged", "{d}/out/ckpt.bin (iter 4) is untouched"], copy_out(),
     may_change=["out/metrics.jsonl", "out/run.json", "out/events.out.tfevents."])
case("train_resume_without_checkpoint", ["train", "--data_dir={s_chars}", "--out_dir={d}/out",
                                         "--init_from=resume", *TINY],
     ["{d}/out/ckpt.bin"], folder("out"))
case("train_out_dir_is_a_file", ["train", "--data_dir={s_chars}", "--out_dir={d}/f/out", *TINY],
     ["{d}/f/out"], text("f", "a file\n"))
case("train_init_from_a_finegpt_checkpoint", ["train", "--data_dir={s_chars}", "--out_dir={d}/o",
                                             "--init_from={s_ckpt}", *TINY],
     ["ckpt.bin", "init_from='resume'"])
case("train_init_from_garbage", ["train", "--data_dir={s_chars}", "--out_dir={d}/o",
                                 "--init_from={d}/m.bin", *TINY], ["m.bin"],
     text("m.bin", b"\x89PNG\r\n\x1a\n" + bytes(3000)))

# sample
case("sample_missing_checkpoint", ["sample", "--out_dir={d}/empty"], ["no checkpoint"],
     folder("empty"))
case("sample_flipped_parameters", ["sample", "--out_dir={d}/out", "--max_new_tokens=5"],
     ["{d}/out/ckpt.bin", "checksum"], steps(copy_out(), patch("out/ckpt.bin", params_flip)))
case("sample_flipped_header", ["sample", "--out_dir={d}/out", "--max_new_tokens=5"],
     ["{d}/out/ckpt.bin", "header fails its checksum"],
     steps(copy_out(), patch("out/ckpt.bin", header_flip)))
case("sample_empty_checkpoint", ["sample", "--out_dir={d}/out"],
     ["{d}/out/ckpt.bin", "empty or truncated"], text("out/ckpt.bin", b""))
case("sample_nan_checkpoint", ["sample", "--out_dir={d}/out", "--max_new_tokens=5"],
     ["{d}/out/ckpt.bin", "non-finite"], steps(copy_out(), patch("out/ckpt.bin", nan_params_ckpt)))
case("sample_inf_llmc_model", ["sample", "--init_from={d}/m.bin", "--tokenizer=char:{s_meta}",
                               "--max_new_tokens=5"], ["m.bin", "non-finite"],
     steps(copy_model(), patch("m.bin", nan_params_llmc)))
case("sample_start_outside_vocabulary", ["sample", "--out_dir={s_out}", "--start=\u00e9t\u00e9",
                                         "--max_new_tokens=5"], ["vocabulary"])
case("sample_start_file_missing", ["sample", "--out_dir={s_out}", "--start=FILE:{d}/nope.txt"],
     ["{d}/nope.txt"])
case("sample_start_file_device", ["sample", "--out_dir={s_out}", "--start=FILE:/dev/zero"],
     ["/dev/zero", "not a file"])
case("sample_start_file_folder", ["sample", "--out_dir={s_out}", "--start=FILE:{d}"],
     ["{d}", "is a folder"])
case("sample_temperature_inf", ["sample", "--out_dir={s_out}", "--temperature=inf"],
     ["--temperature", "finite"])
case("sample_temperature_nan", ["sample", "--out_dir={s_out}", "--temperature=nan"],
     ["--temperature", "finite"])
case("sample_temperature_past_float", ["sample", "--out_dir={s_out}", "--temperature=1e300"],
     ["--temperature"])
case("sample_num_samples_past_32_bits", ["sample", "--out_dir={s_out}",
                                         "--num_samples=4294967297"],
     ["--num_samples", "past the largest value"])
case("sample_max_new_tokens_negative", ["sample", "--out_dir={s_out}", "--max_new_tokens=-1"],
     ["--max_new_tokens"])
case("sample_top_k_past_32_bits", ["sample", "--out_dir={s_out}", "--top_k=4294967296"],
     ["--top_k", "past the largest value"])
case("sample_threads_negative", ["sample", "--out_dir={s_out}", "--threads=-3"], ["--threads"])
case("sample_conflicting_flags", ["sample", "--out_dir={s_out}", "--num_samples=1",
                                  "--num-samples=2"], ["--num_samples", "given twice"])
case("sample_flag_without_value", ["sample", "--out_dir={s_out}", "--start"],
     ["--start", "missing value"])
case("sample_char_meta_missing", ["sample", "--out_dir={s_out}", "--tokenizer=char:{d}/no.json"],
     ["{d}/no.json"])
case("sample_tokenizer_disagrees_with_model", ["sample", "--out_dir={s_out}", "--tokenizer=gpt2"],
     ["50257", "65"])

# eval
case("eval_missing_checkpoint", ["eval", "--out_dir={d}/nothing"], ["nothing", "no checkpoint"])
case("eval_truncated_checkpoint", ["eval", "--out_dir={d}/out", "--tokens=1024"],
     ["{d}/out/ckpt.bin", "truncated"], steps(copy_out(), patch("out/ckpt.bin", truncate(5000))))
case("eval_foreign_file", ["eval", "--out_dir={d}/out"], ["{d}/out/ckpt.bin", "magic"],
     text("out/ckpt.bin", b"PK\x03\x04 a zip file, not a checkpoint" * 10))
case("eval_nan_checkpoint", ["eval", "--out_dir={d}/out", "--tokens=1024", "--batch_size=4"],
     ["{d}/out/ckpt.bin", "non-finite"], steps(copy_out(), patch("out/ckpt.bin", nan_params_ckpt)))
case("eval_block_size_past_the_model", ["eval", "--out_dir={s_out}", "--block_size=64"],
     ["--block_size", "1..32"])
case("eval_batch_size_past_32_bits", ["eval", "--out_dir={s_out}", "--batch_size=4294967297",
                                      "--tokens=1024"], ["--batch_size", "past the largest value"])
case("eval_negative_tokens", ["eval", "--out_dir={s_out}", "--tokens=-5"], ["--tokens"])
case("eval_tokens_past_the_data", ["eval", "--out_dir={s_out}", "--tokens=100000000"],
     ["--tokens", "available"])
case("eval_token_outside_the_vocabulary", ["eval", "--out_dir={s_out}", "--input={d}/t.bin",
                                           "--tokens=128", "--batch_size=4"],
     ["t.bin", "1000", "vocabulary"], shard("t.bin", list(range(60)) + [1000] + [1] * 100))
case("eval_checkpoint_as_token_file", ["eval", "--out_dir={s_out}", "--input={s_ckpt}",
                                       "--batch_size=4", "--tokens=1024"],
     ["ckpt.bin", "outside the model's vocabulary"])
case("eval_empty_token_file", ["eval", "--out_dir={s_out}", "--input={d}/t.bin"],
     ["t.bin", "empty"], text("t.bin", b""))
case("eval_token_file_bad_version", ["eval", "--out_dir={s_out}", "--input={d}/t.bin"],
     ["t.bin", "version 2"], shard("t.bin", version=2))
case("eval_token_file_is_a_folder", ["eval", "--out_dir={s_out}", "--input={d}/t.bin"],
     ["t.bin"], folder("t.bin"))
case("eval_val_split_missing", ["eval", "--out_dir={s_out}", "--data_dir={d}/data"],
     ["data", "'val'"], shard("data/x_train_000001.bin", range(1000)))
case("eval_llmc_truncated", ["eval", "--init_from={d}/m.bin"], ["m.bin", "truncated"],
     steps(copy_model(), patch("m.bin", truncate(-4))))
case("eval_llmc_bad_version", ["eval", "--init_from={d}/m.bin"], ["m.bin", "version 4"],
     steps(copy_model(), patch("m.bin", llmc_header(version=4))))
case("eval_llmc_absurd_shape", ["eval", "--init_from={d}/m.bin"], ["m.bin", "too large"],
     steps(copy_model(), patch("m.bin", llmc_header(L=2147483647, C=2147483584, NH=1))))
case("eval_llmc_heads_do_not_divide", ["eval", "--init_from={d}/m.bin"], ["m.bin", "divisible"],
     steps(copy_model(), patch("m.bin", llmc_header(NH=5))))
case("eval_unknown_flag_suggests", ["eval", "--out_dir={s_out}", "--tokenz=1024"],
     ["--tokenz", "did you mean 'tokens'"])
case("eval_conflicting_flags", ["eval", "--out_dir={s_out}", "--split=val", "--split", "train"],
     ["--split", "given twice"])

# eval --hellaswag (s_gpt2: a tiny model of GPT-2's vocabulary, block_size 32)
HS_GOOD = json.dumps({"ctx": "A man sits down.", "endings": ["he eats.", "he reads.", "he sleeps.",
                                                             "he sings."], "label": 1})


def hs_line(**fields):
    """HS_GOOD with fields replaced (a value None drops the field)."""
    j = json.loads(HS_GOOD)
    for k, v in fields.items():
        if v is None:
            del j[k]
        else:
            j[k] = v
    return json.dumps(j)


HS = ["eval", "--init_from={s_gpt2}", "--hellaswag={d}/h.jsonl"]
for name, body, words in [
        ("not_json", HS_GOOD + "\n{ctx: oops}\n", ["h.jsonl:2", "not JSON"]),
        ("not_an_object", "[1, 2, 3]\n", ["h.jsonl:1", "JSON object", "array"]),
        ("no_ctx", hs_line(ctx=None), ["h.jsonl:1", '"ctx"']),
        ("no_endings", HS_GOOD + "\n\n" + hs_line(endings=None), ["h.jsonl:3", '"endings"']),
        ("no_label", hs_line(label=None), ["h.jsonl:1", '"label"']),
        ("three_endings", hs_line(endings=["a", "b", "c"]), ["h.jsonl:1", "4 strings", "3 items"]),
        ("ending_not_a_string", hs_line(endings=["a", "b", 7, "d"]), ["h.jsonl:1", "endings[2]"]),
        ("ctx_not_a_string", hs_line(ctx=["A man"]), ["h.jsonl:1", '"ctx" must be a string']),
        ("empty_ctx", hs_line(ctx=""), ["h.jsonl:1", '"ctx" is empty']),
        ("label_out_of_range", hs_line(label=4), ["h.jsonl:1", "outside 0..3"]),
        ("label_negative", hs_line(label=-1), ["h.jsonl:1", "outside 0..3"]),
        ("label_not_an_integer", hs_line(label=1.5), ["h.jsonl:1", "integer 0..3"]),
        ("label_word", hs_line(label="one"), ["h.jsonl:1", "integer 0..3"]),
        ("empty_file", "", ["h.jsonl", "no HellaSwag example", "empty"]),
        ("blank_lines_only", "\n  \n\n", ["h.jsonl", "only blank lines"]),
        ("ending_past_block_size", hs_line(endings=["a", "b", "c", "d " * 40]),
         ["h.jsonl:1", "ending 3", "too long for block_size 32"])]:
    case(f"eval_hellaswag_{name}", HS, words, text("h.jsonl", body))
case("eval_hellaswag_missing_file", HS, ["h.jsonl"])
case("eval_hellaswag_file_is_a_folder", HS, ["h.jsonl", "folder"], folder("h.jsonl"))
case("eval_hellaswag_char_model", ["eval", "--out_dir={s_out}", "--hellaswag={d}/h.jsonl"],
     ["GPT-2's vocabulary", "character vocabulary"], text("h.jsonl", HS_GOOD))
case("eval_hellaswag_char_tokenizer", [*HS, "--tokenizer=char:{s_meta}"],
     ["GPT-2 tokenizer"], text("h.jsonl", HS_GOOD))
case("eval_hellaswag_with_tokens", [*HS, "--tokens=1024"], ["--tokens", "does not apply"],
     text("h.jsonl", HS_GOOD))
case("eval_max_examples_without_hellaswag", ["eval", "--out_dir={s_out}", "--max_examples=5"],
     ["--max_examples", "only with --hellaswag"])
case("eval_hellaswag_scores_over_its_input", [*HS, "--scores={d}/h.jsonl"],
     ["--scores", "is an input"], text("h.jsonl", HS_GOOD))
case("eval_hellaswag_scores_in_a_missing_folder", [*HS, "--scores={d}/no/s.jsonl"],
     ["--scores", "does not exist"], text("h.jsonl", HS_GOOD))
case("eval_hellaswag_negative_max_examples", [*HS, "--max_examples=-1"], ["--max_examples"],
     text("h.jsonl", HS_GOOD))

# export
case("export_over_its_checkpoint", ["export", "--out_dir={d}/out", "--output={d}/out/ckpt.bin"],
     ["is the file being exported"], copy_out())
case("export_through_a_link_to_its_checkpoint", ["export", "--out_dir={d}/out",
                                                 "--output={d}/link.bin"],
     ["is the file being exported"], steps(copy_out(), symlink("{d}/out/ckpt.bin", "link.bin")))
case("export_over_a_hard_link_to_its_checkpoint", ["export", "--out_dir={d}/out",
                                                   "--output={d}/hard.bin"],
     ["is the file being exported"], steps(copy_out(), hardlink("{d}/out/ckpt.bin", "hard.bin")))
case("export_over_its_llmc_input", ["export", "--init_from={d}/m.bin", "--output={d}/m.bin",
                                    "--dtype=bfloat16"],
     ["is the file being exported"], copy_model())
case("export_to_dev_null", ["export", "--out_dir={s_out}", "--output=/dev/null"],
     ["/dev/null", "not a regular file"])
case("export_to_dev_zero", ["export", "--out_dir={s_out}", "--output=/dev/zero"],
     ["/dev/zero", "not a regular file"])
case("export_through_a_link_to_dev_null", ["export", "--out_dir={s_out}", "--output={d}/l.bin"],
     ["l.bin", "not a regular file"], symlink("/dev/null", "l.bin"))
case("export_to_a_fifo", ["export", "--out_dir={s_out}", "--output={d}/fifo"],
     ["fifo", "not a regular file"], lambda d, s: os.mkfifo(os.path.join(d, "fifo")))
case("export_into_a_folder", ["export", "--out_dir={s_out}", "--output={d}/adir"],
     ["{d}/adir", "a folder"], folder("adir"))
case("export_into_a_missing_folder", ["export", "--out_dir={s_out}", "--output={d}/no/m.bin"],
     ["{d}/no/m.bin", "cannot write"])
case("export_without_output", ["export", "--out_dir={s_out}"], ["--output"])
case("export_bad_dtype", ["export", "--out_dir={s_out}", "--output={d}/m.bin", "--dtype=float16"],
     ["--dtype", "float16"])
case("export_llmc_of_a_rotary_model", ["export", "--out_dir={d}/o", "--output={d}/m.bin"],
     ["rotary = True", "llm.c", "GPT-2 only"], trained_with("o", "--rotary=True"))
case("export_hf_of_an_rmsnorm_relu2_model", ["export", "--out_dir={d}/o", "--format=hf",
                                             "--out={d}/hf"],
     ["norm = 'rmsnorm'", "mlp_activation = 'relu2'", "GPT2LMHeadModel"],
     trained_with("o", "--norm=rmsnorm", "--mlp_activation=relu2"))
case("export_bad_format", ["export", "--out_dir={s_out}", "--output={d}/m.bin", "--format=onnx"],
     ["--format", "onnx"])
case("export_flipped_checkpoint", ["export", "--out_dir={d}/out", "--output={d}/m.bin"],
     ["{d}/out/ckpt.bin", "checksum"], steps(copy_out(), patch("out/ckpt.bin", params_flip)))
case("export_nan_checkpoint", ["export", "--out_dir={d}/out", "--output={d}/m.bin"],
     ["{d}/out/ckpt.bin", "non-finite"], steps(copy_out(), patch("out/ckpt.bin", nan_params_ckpt)))
case("export_unexpected_argument", ["export", "--out_dir={s_out}", "{d}/m.bin"],
     ["unexpected argument"])

# Hugging Face folders (the shared model: char vocabulary 65, n_layer 1, n_embd 32, block 32)
HF_EVAL = ["--input={s_chars}/chars_val_000000.bin", "--tokens=256", "--batch_size=2"]
C_ATTN = "transformer.h.0.attn.c_attn.weight"
HF_SAMPLE = ["sample", "--init_from={d}/hf", "--max_new_tokens=2", "--num_samples=1"]
case("sample_hf_vocab_not_json", HF_SAMPLE, ["vocab.json", "not a JSON object", "--tokenizer"],
     steps(copy_hf(), text("hf/vocab.json", b"[")))
case("sample_hf_vocab_token_of_two_bytes", HF_SAMPLE, ["vocab.json", "'ab'", "ASCII byte"],
     steps(copy_hf(), patch("hf/vocab.json", json_edit(lambda j: j.update(ab=len(j))))))
case("sample_hf_vocab_id_twice", HF_SAMPLE, ["vocab.json", "given once"],
     steps(copy_hf(), patch("hf/vocab.json", json_edit(lambda j: j.update(a=j["b"])))))
case("sample_hf_merges_not_gpt2", HF_SAMPLE, ["merges.txt", "not GPT-2's merges"],
     steps(copy_hf(), text("hf/merges.txt", b"#version: 0.2\na b\n")))
case("sample_hf_merges_without_version", HF_SAMPLE, ["merges.txt", "#version"],
     steps(copy_hf(), text("hf/merges.txt", b"a b\n")))
case("eval_hf_missing_tensor", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["model.safetensors", "transformer.h.0.mlp.c_fc.bias", "missing"],
     steps(copy_hf(), patch("hf/model.safetensors", st_drop("transformer.h.0.mlp.c_fc.bias"))))
case("eval_hf_wrong_shape", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["model.safetensors", C_ATTN, "[96, 32]", "[32, 96]"],
     steps(copy_hf(), patch("hf/model.safetensors", st_shape(C_ATTN, [96, 32]))))
case("eval_hf_config_disagrees_with_weights", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["model.safetensors", "shape"],
     steps(copy_hf(), patch("hf/config.json", json_edit(lambda j: j.update(n_embd=64)))))
case("eval_hf_offsets_overlap", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["model.safetensors", "overlaps"],
     steps(copy_hf(), patch("hf/model.safetensors", st_offsets(C_ATTN, -4, -4))))
case("eval_hf_offsets_past_the_end", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["model.safetensors", "outside the file"],
     steps(copy_hf(), patch("hf/model.safetensors", st_offsets(C_ATTN, 10**9, 10**9))))
case("eval_hf_offsets_disagree_with_shape", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["model.safetensors", C_ATTN, "need"],
     steps(copy_hf(), patch("hf/model.safetensors", st_offsets(C_ATTN, 0, -4))))
case("eval_hf_truncated", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["model.safetensors", "outside the file"],
     steps(copy_hf(), patch("hf/model.safetensors", truncate(-100))))
case("eval_hf_trailing_bytes", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["model.safetensors", "after the last tensor"],
     steps(copy_hf(), patch("hf/model.safetensors", lambda b: b + bytes(64))))
case("eval_hf_header_length_past_the_end", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["model.safetensors", "past the end"],
     steps(copy_hf(), patch("hf/model.safetensors",
                            lambda b: bytearray(struct.pack("<Q", 2**63)) + b[8:])))
case("eval_hf_header_not_json", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["model.safetensors", "not a JSON object"],
     steps(copy_hf(), patch("hf/model.safetensors", lambda b: b[:8] + b"[" + b[9:])))
case("eval_hf_tiny_file", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["model.safetensors", "too short"],
     steps(copy_hf(), text("hf/model.safetensors", b"\x01\x00")))
case("eval_hf_unknown_dtype", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["model.safetensors", "unknown dtype"],
     steps(copy_hf(), patch("hf/model.safetensors", safetensors_edit(
         lambda h, blobs: h[C_ATTN].update(dtype="F24")))))
case("eval_hf_integer_weights", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["model.safetensors", C_ATTN, "I32"],
     steps(copy_hf(), patch("hf/model.safetensors", safetensors_edit(
         lambda h, blobs: h[C_ATTN].update(dtype="I32")))))
case("eval_hf_unexpected_tensor", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["model.safetensors", "unexpected tensor", "score.weight"],
     steps(copy_hf(), patch("hf/model.safetensors", st_add("score.weight", [2, 32], 0.5))))
case("eval_hf_untied_lm_head", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["model.safetensors", "lm_head.weight", "untied"],
     steps(copy_hf(), patch("hf/model.safetensors", st_add("lm_head.weight", [65, 32], 0.5))))
case("eval_hf_nan_weight", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["model.safetensors", "non-finite"],
     steps(copy_hf(), patch("hf/model.safetensors", safetensors_edit(
         lambda h, blobs: blobs.update({C_ATTN: struct.pack("<f", math.nan) + blobs[C_ATTN][4:]})))))
case("eval_hf_not_gpt2", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["config.json", "model_type", "llama"],
     steps(copy_hf(), patch("hf/config.json", json_edit(lambda j: j.update(model_type="llama")))))
case("eval_hf_other_activation", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["config.json", "activation_function", "relu"],
     steps(copy_hf(), patch("hf/config.json",
                            json_edit(lambda j: j.update(activation_function="relu")))))
case("eval_hf_config_not_json", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["config.json", "not a JSON object"], steps(copy_hf(), text("hf/config.json", "{n_layer: 2")))
case("eval_hf_config_negative_layers", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["config.json", "n_layer"],
     steps(copy_hf(), patch("hf/config.json", json_edit(lambda j: j.update(n_layer=-1)))))
case("eval_hf_config_huge_embd", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["config.json", "n_embd"],
     steps(copy_hf(), patch("hf/config.json", json_edit(lambda j: j.update(n_embd=2**40)))))
case("eval_hf_config_too_large", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["config.json", "too large"],
     steps(copy_hf(), patch("hf/config.json", json_edit(lambda j: j.update(
         n_embd=2**24, n_head=1, n_layer=2**24)))))
case("eval_hf_no_safetensors", ["eval", "--init_from={d}/hf", *HF_EVAL],
     ["no model.safetensors"], text("hf/config.json", "{}"))
case("train_init_from_hf_wrong_shape", ["train", "--data_dir={s_chars}", "--out_dir={d}/o",
                                        "--init_from={d}/hf", *TINY],
     ["model.safetensors", C_ATTN, "[96, 32]"],
     steps(copy_hf(), patch("hf/model.safetensors", st_shape(C_ATTN, [96, 32]))))
case("train_init_from_hf_longer_block", ["train", "--data_dir={s_chars}", "--out_dir={d}/o",
                                         "--init_from={s_hf}", *TINY[:3], "--block_size=64",
                                         *TINY[4:]],
     ["block_size 64", "32 positions"])
case("export_hf_into_a_checkpoint_folder", ["export", "--out_dir={s_out}", "--format=hf",
                                            "--out={d}/out"], ["--out", "ckpt.bin"], copy_out())
case("export_hf_into_its_own_checkpoint_folder", ["export", "--out_dir={d}/out", "--format=hf",
                                                  "--out={d}/out"],
     ["--out", "is the folder being exported"], copy_out())
case("export_hf_to_a_file", ["export", "--out_dir={s_out}", "--format=hf", "--out={d}/f"],
     ["--out", "not a folder"], text("f", "mine\n"))
case("export_hf_into_a_folder_of_other_files", ["export", "--out_dir={s_out}", "--format=hf",
                                                "--out={d}/mine"],
     ["--out", "notes.txt"], text("mine/notes.txt", "mine\n"))
case("export_hf_through_links_into_a_snapshot", ["export", "--out_dir={s_out}", "--format=hf",
                                                 "--out={d}/snap"],
     ["--out", "config.json"],
     steps(text("blobs/abc", "{}"), folder("snap"), symlink("{d}/blobs/abc", "snap/config.json")))
case("export_hf_over_its_source", ["export", "--init_from={d}/hf", "--format=hf", "--out={d}/hf",
                                   "--tokenizer=char:{s_meta}"],
     ["is the folder being exported"], copy_hf())
case("export_hf_with_output", ["export", "--out_dir={s_out}", "--format=hf", "--output={d}/m"],
     ["--output", "--out=DIR"])
case("export_hf_without_out", ["export", "--out_dir={s_out}", "--format=hf"], ["--out"])
case("export_llmc_with_out", ["export", "--out_dir={s_out}", "--output={d}/m.bin", "--out={d}/x"],
     ["--out", "--format hf"])
case("export_hf_tokenizer_of_another_vocabulary", ["export", "--out_dir={s_out}", "--format=hf",
                                                   "--out={d}/x", "--tokenizer=gpt2"],
     ["50257", "65"])

# prepare
case("prepare_out_is_its_input_folder", ["prepare", "--input", "{d}/texts", "--out", "{d}/texts"],
     ["is inside --out"], text("texts/a.txt", "Some text to tokenize.\n"))
case("prepare_out_is_its_input_file", ["prepare", "--tokenizer", "char", "--input", "{d}/a.txt",
                                       "--out", "{d}/a.txt"],
     ["is inside --out"], text("a.txt", "Some text to tokenize.\n"))
case("prepare_out_is_a_link_to_its_input_folder", ["prepare", "--input", "{d}/texts/a.txt",
                                                   "--out", "{d}/link"],
     ["is inside --out"], steps(text("texts/a.txt", "Some text.\n"), symlink("{d}/texts", "link")))
case("prepare_out_is_dev_null", ["prepare", "--input", "{d}/a.txt", "--out", "/dev/null"],
     ["/dev/null", "not a folder"], text("a.txt", "Some text to tokenize.\n"))
case("prepare_out_is_a_file", ["prepare", "--input", "{d}/a.txt", "--out", "{d}/b.txt"],
     ["{d}/b.txt", "not a folder"],
     steps(text("a.txt", "Some text.\n"), text("b.txt", "Another file.\n")))
case("prepare_input_missing", ["prepare", "--input", "{d}/none.txt", "--out", "{d}/o"],
     ["{d}/none.txt"])
case("prepare_input_empty", ["prepare", "--input", "{d}/a.txt", "--out", "{d}/o"],
     ["a.txt", "empty"], text("a.txt", ""))
case("prepare_input_device", ["prepare", "--input", "/dev/zero", "--out", "{d}/o"],
     ["/dev/zero", "not a file"])
case("prepare_jsonl_bad_line", ["prepare", "--input", "{d}/a.jsonl", "--out", "{d}/o"],
     ["a.jsonl", "2"], text("a.jsonl", '{"text": "good"}\n{"text": "bad\n{"text": "x"}\n'))
case("prepare_parquet_without_text_column", ["prepare", "--input", "{d}/a.parquet", "--out",
                                             "{d}/o"],
     ["a.parquet", "text"], parquet("a.parquet", {"content": ["one", "two"]}))
case("prepare_parquet_empty", ["prepare", "--input", "{d}/a.parquet", "--out", "{d}/o"],
     ["no documents", "0 records"], parquet("a.parquet", {"text": []}))
case("prepare_parquet_garbage", ["prepare", "--input", "{d}/a.parquet", "--out", "{d}/o"],
     ["a.parquet"], text("a.parquet", b"PAR1" + bytes(range(256)) * 8))
case("prepare_max_tokens_zero", ["prepare", "--input", "{shk}", "--out", "{d}/o", "--max-tokens",
                                 "0"], ["--max-tokens", "at least 1"])
case("prepare_flag_without_value", ["prepare", "--input", "{shk}", "--out"], ["--out",
                                                                                "needs a value"])
case("prepare_unknown_flag", ["prepare", "--input", "{shk}", "--outt", "{d}/o"], ["--outt"])
case("prepare_conflicting_flags", ["prepare", "--input", "{shk}", "--out", "{d}/a", "--out",
                                   "{d}/b"], ["--out", "given twice"])
case("prepare_conflicting_tokenizers", ["prepare", "--input", "{shk}", "--out", "{d}/a",
                                        "--tokenizer=gpt2", "--tokenizer", "char"],
     ["--tokenizer", "given twice"])
case("prepare_threads_absurd", ["prepare", "--input", "{shk}", "--out", "{d}/o", "--threads",
                                "1e12"], ["--threads"])
case("prepare_val_fraction_nan", ["prepare", "--tokenizer", "char", "--input", "{shk}", "--out",
                                  "{d}/o", "--val-fraction", "nan"], ["--val-fraction"])
case("prepare_shard_tokens_zero", ["prepare", "--input", "{shk}", "--out", "{d}/o",
                                   "--shard-tokens", "0"], ["--shard-tokens"])
case("prepare_missing_rank_file", ["prepare", "--input", "{shk}", "--out", "{d}/o",
                                   "--tokenizer", "{d}/none.tiktoken"], ["none.tiktoken"])
case("prepare_name_with_a_slash", ["prepare", "--input", "{shk}", "--out", "{d}/o", "--name",
                                   "../evil"], ["--name", "/"])
case("prepare_refuses_another_runs_shards", ["prepare", "--tokenizer", "char", "--input", "{shk}",
                                             "--out", "{d}/o", "--quiet"], ["{d}/o", "--overwrite"],
     prepared("o"))
case("prepare_hub_input_without_a_dataset", ["prepare", "--input", "hub:fineweb", "--out",
                                             "{d}/o"], ["hub:fineweb", "hub:ORG/NAME"])

# download (each refused before it would reach the network)
case("download_not_a_repo_name", ["download", "fineweb"], ["'fineweb'", "ORG/NAME"])
case("download_repo_name_climbs", ["download", "../..", "--to", "{d}/o"], ["'../..'"])
case("download_three_part_name", ["download", "a/b/c"], ["'a/b/c'"])
case("download_zero_parallel", ["download", "a/b", "--parallel", "0"], ["--parallel"])
case("download_negative_retries", ["download", "a/b", "--retries=-2"], ["--retries"])
case("download_unknown_repo_type", ["download", "a/b", "--repo-type", "space"], ["--repo-type"])
case("download_include_on_a_dataset", ["download", "a/b", "--name", "x", "--include", "*.json"],
     ["--include", "models"])
case("download_two_repos", ["download", "a/b", "c/d"], ["unexpected argument 'c/d'"])

# tokenize and detokenize
case("tokenize_a_folder", ["tokenize", "{d}"], ["{d}", "is a folder"])
case("tokenize_missing_file", ["tokenize", "{d}/none.txt"], ["{d}/none.txt"])
case("tokenize_dangling_link", ["tokenize", "{d}/link"], ["{d}/link"],
     symlink("{d}/gone.txt", "link"))
case("tokenize_a_socket", ["tokenize", "{d}/sock"], ["{d}/sock"], unix_socket("sock"))
case("tokenize_dev_zero", ["tokenize", "/dev/zero"], ["/dev/zero", "not a file"])
case("tokenize_no_file", ["tokenize", "--tokenizer=gpt2"], ["expected a FILE"])
case("tokenize_threads_negative", ["tokenize", "{shk}", "--threads=-1"], ["--threads"])
case("tokenize_threads_past_32_bits", ["tokenize", "{shk}", "--threads=4294967297"],
     ["--threads", "past the largest value"])
case("tokenize_char_meta_not_json", ["tokenize", "{d}/a.txt", "--tokenizer=char:{d}/a.txt"],
     ["a.txt", "JSON"], text("a.txt", "hello\n"))
case("tokenize_rank_file_garbage", ["tokenize", "{d}/a.txt", "--tokenizer={d}/r.tiktoken"],
     ["r.tiktoken"], steps(text("a.txt", "hello\n"), text("r.tiktoken", "!!!! 0\nzz\n")))
case("tokenize_character_outside_vocabulary", ["tokenize", "{d}/a.txt",
                                               "--tokenizer=char:{s_meta}"],
     ["a.txt"], text("a.txt", "caf\u00e9\n"))
case("detokenize_not_an_id", ["detokenize", "{d}/ids.txt"], ["ids.txt", "'abc'", "not a token id"],
     text("ids.txt", "12 abc 7\n"))
case("detokenize_id_outside_vocabulary", ["detokenize", "{d}/ids.txt"], ["ids.txt", "70000"],
     text("ids.txt", "1 2 70000\n"))
case("detokenize_negative_id", ["detokenize", "{d}/ids.txt"], ["ids.txt", "-2"],
     text("ids.txt", "1 -2\n"))
case("detokenize_char_id_outside_vocabulary", ["detokenize", "{d}/ids.txt",
                                               "--tokenizer=char:{s_meta}"], ["ids.txt", "65"],
     text("ids.txt", "1 2 65\n"))
case("detokenize_two_files", ["detokenize", "{d}/a", "{d}/b"], ["at most one FILE"],
     steps(text("a", "1\n"), text("b", "2\n")))

# plan
case("plan_unknown_gpu_suggests", ["plan", "--gpu", "rtx 4095"], ["rtx 4095", "RTX 4090"])
case("plan_vram_too_small", ["plan", "--vram", "1GB"], ["too small"])
case("plan_recipe_unknown", ["plan", "--gpu", "4090", "--recipe", "speedrun"],
     ["--recipe", "'speedrun'", "'modern'"])
case("plan_recipe_modern_with_offload", ["plan", "--gpu", "4090", "--recipe", "modern",
                                         "--offload"], ["--recipe modern", "Muon", "--offload"])
case("train_recipe_unknown_in_file", ["train", "{d}/c.py", "--dry_run"],
     ["c.py:2", "recipe", "'llama'"], text("c.py", "n_layer = 2\nrecipe = 'llama'\n"))
case("plan_pcie_zero", ["plan", "--gpu", "4090", "--pcie", "0"], ["--pcie", "positive"])
case("plan_host_bw_negative", ["plan", "--gpu", "4090", "--host_bw=-5"], ["--host_bw"])
case("plan_write_over_a_file_without_force", ["plan", "--gpu", "4090", "--write", "{d}/mine.py"],
     ["{d}/mine.py", "--force"], text("mine.py", "n_layer = 3  # my own config\n"))
case("plan_write_through_a_link_without_force", ["plan", "--gpu", "4090", "--write",
                                                 "{d}/link.py"], ["link.py", "--force"],
     steps(text("mine.py", "n_layer = 3\n"), symlink("{d}/mine.py", "link.py")))
case("plan_write_to_dev_null_forced", ["plan", "--gpu", "4090", "--write", "/dev/null",
                                       "--force"], ["/dev/null", "not a regular file"])
case("plan_write_through_a_link_to_dev_null_forced", ["plan", "--gpu", "4090", "--write",
                                                      "{d}/c.py", "--force"],
     ["c.py", "not a regular file"], symlink("/dev/null", "c.py"))
case("plan_write_into_a_folder_forced", ["plan", "--gpu", "4090", "--write", "{d}/adir",
                                         "--force"], ["{d}/adir", "a folder"], folder("adir"))
case("plan_write_over_the_checked_config", ["plan", "--gpu", "4090", "--check", "{d}/c.py",
                                            "--write", "{d}/c.py", "--force"],
     ["--write and --check"], text("c.py", "n_layer = 3\n"))
case("plan_check_missing_config", ["plan", "--gpu", "4090", "--check", "{d}/none.py"],
     ["none.py", "not found"])
case("plan_check_bad_config", ["plan", "--gpu", "4090", "--check", "{d}/c.py"],
     ["c.py:1", "n_layer"], text("c.py", "n_layer = 'four'\n"))
case("plan_check_model_past_any_memory", ["plan", "--gpu", "4090", "--check", "{d}/c.py"],
     ["too large"], text("c.py", "n_layer = 2**31 - 1\nn_embd = 2**30\nn_head = 1\n"))
case("plan_gpus_zero", ["plan", "--gpu", "4090", "--gpus", "0"], ["--gpus"])
case("plan_tokens_past_float", ["plan", "--gpu", "4090", "--tokens", "1e300T"], ["--tokens",
                                                                                 "1e300T"])
case("plan_overhead_nan", ["plan", "--gpu", "4090", "--overhead", "nan"], ["--overhead"])
case("plan_top_zero", ["plan", "--gpu", "4090", "--top", "0"], ["--top"])
case("plan_tokens_per_step_past_64_bits", ["plan", "--gpu", "4090", "--tokens_per_step",
                                           "99999999999999999999"],
     ["--tokens_per_step", "64 bits"])
case("plan_conflicting_gpus", ["plan", "--gpu", "4090", "--gpu=A100"], ["--gpu", "given twice"])

# bench
case("bench_negative_threads", ["bench", "--threads=-3", "--steps=1"], ["--threads", "-3"])
case("bench_device_tpu", ["bench", "--device=tpu", "--steps=1"], ["--device", "tpu"])
case("bench_offload_x", ["bench", "--offload=all", "--steps=1"], ["--offload", "'all'"])
case("bench_offload_on_cpu", ["bench", "--offload=optimizer", "--steps=1"],
     ["--offload", "--device cuda"])
case("bench_embd_not_divisible_by_heads", ["bench", "--n_embd=100", "--n_head=3", "--steps=1"],
     ["n_embd (100)", "divisible"])
case("bench_model_past_any_memory", ["bench", "--n_embd=2147483647", "--n_head=1", "--steps=1"],
     ["too large"])
case("bench_seq_len_past_block_size", ["bench", "--n_layer=1", "--n_embd=64", "--n_head=2",
                                       "--block_size=32", "--seq_len=64", "--steps=1"],
     ["64", "block_size"])
case("bench_zero_batch", ["bench", "--n_layer=1", "--n_embd=64", "--n_head=2", "--batch_size=0",
                          "--steps=1"], ["batch_size"])
case("bench_vocab_past_uint16", ["bench", "--vocab_size=70000", "--steps=1"], ["vocab_size"])
case("bench_layers_past_32_bits", ["bench", "--n_layer=4294967297"], ["--n_layer", "past"])

# report
case("report_no_folder_given", ["report"], ["give the run's folder"])
case("report_two_folders", ["report", "{d}", "{d}"], ["unexpected argument"])
case("report_unknown_flag_suggests", ["report", "{d}", "--ouput={d}/r.html"], ["--ouput", "output"])
case("report_missing_folder", ["report", "{d}/nope"], ["{d}/nope: no such folder"])
case("report_folder_is_a_file", ["report", "{d}/f"], ["{d}/f: not a folder"], text("f", "x\n"))
case("report_no_metrics", ["report", "{d}/out"], ["{d}/out/metrics.jsonl: missing"], folder("out"))
case("report_empty_metrics", ["report", "{d}/out"], ["{d}/out/metrics.jsonl: no records yet"],
     text("out/metrics.jsonl", ""))
case("report_metrics_is_a_folder", ["report", "{d}/out"], ["{d}/out/metrics.jsonl", "folder"],
     folder("out/metrics.jsonl"))
case("report_malformed_line", ["report", "{d}/out"],
     ["{d}/out/metrics.jsonl:2", "not a JSON record"],
     text("out/metrics.jsonl", '{"iter": 0, "loss": 1}\n{"iter": 1, "loss": 2\n{"iter": 2}\n'))
case("report_record_without_iter", ["report", "{d}/out"], ["{d}/out/metrics.jsonl:1", "iter"],
     text("out/metrics.jsonl", '{"loss": 1}\n'))
case("report_binary_metrics", ["report", "{d}/out"], ["{d}/out/metrics.jsonl:1"],
     text("out/metrics.jsonl", b"\x00\xff\xfe garbage\n"))
case("report_damaged_run_json", ["report", "{d}/out"], ["{d}/out/run.json", "not JSON"],
     steps(copy_out(), text("out/run.json", "{")))
case("report_run_json_of_another_format", ["report", "{d}/out"],
     ["{d}/out/run.json", "not a finegpt run.json"],
     steps(copy_out(), text("out/run.json", '{"format": "other"}')))
case("report_output_is_the_metrics", ["report", "{d}/out", "--output={d}/out/metrics.jsonl"],
     ["{d}/out/metrics.jsonl", "a file of the run"], copy_out())
case("report_output_is_the_checkpoint", ["report", "{d}/out", "--output={d}/out/ckpt.bin"],
     ["{d}/out/ckpt.bin", "a file of the run"], copy_out())
case("report_output_is_a_folder", ["report", "{d}/out", "--output={d}/out"],
     ["{d}/out", "not a regular file"], copy_out())
case("report_output_is_a_device", ["report", "{d}/out", "--output=/dev/null"],
     ["/dev/null", "not a regular file"], copy_out())
case("report_output_folder_missing", ["report", "{d}/out", "--output={d}/no/page.html"],
     ["{d}/no/page.html", "cannot write"], copy_out())

# info, version, the command itself
case("info_unknown_flag", ["info", "--verbose"], ["--verbose"])
case("info_unexpected_argument", ["info", "extra"], ["unexpected argument 'extra'"])
case("version_takes_no_arguments", ["version", "extra"], ["takes no arguments"])
case("unknown_command", ["trian"], ["unknown command 'trian'"])


# ---- the checks ----------------------------------------------------------------------------------

def snapshot(root):
    """path -> what it is: sha256 of a file, the target of a link, 'dir' or the file type."""
    out = {}
    if not os.path.lexists(root):
        return out
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(base, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[p] = "link -> " + os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                out[p] = "dir"
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    out[p] = hashlib.sha256(f.read()).hexdigest()
            else:
                out[p] = f"special {stat.S_IFMT(st.st_mode):o}"
    return out


Shared = collections.namedtuple("Shared", "root chars out ckpt model meta hf gpt2")


def write_gpt2_vocab_model(path, L=1, NH=1, C=8, T=32, V=50257):
    """An llm.c model file of GPT-2's vocabulary, small random weights (for --hellaswag)."""
    Vp = (V + 63) // 64 * 64
    n = Vp * C + T * C + L * (12 * C * C + 13 * C) + 2 * C
    header = np.zeros(256, dtype=np.int32)
    header[:8] = [20240326, 3, T, V, L, NH, C, Vp]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.random.default_rng(0).normal(0, 0.02, n).astype(np.float32).tobytes())


class Hostile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        root = os.path.join(cls._tmp.name, "shared")
        os.makedirs(root)
        chars, out = os.path.join(root, "chars"), os.path.join(root, "out")
        model = os.path.join(root, "model.bin")
        for args in (["prepare", "--tokenizer", "char", "--input", SHAKESPEARE, "--out", chars,
                      "--quiet"],
                     ["train", f"--data_dir={chars}", f"--out_dir={out}", *TINY[:6],
                      "--max_iters=4", "--eval_interval=4", *TINY[7:]],
                     ["export", f"--out_dir={out}", f"--output={model}"],
                     ["export", f"--out_dir={out}", "--format=hf", f"--out={root}/hf"]):
            p = subprocess.run([FINEGPT, *args], capture_output=True, text=True, timeout=300)
            if p.returncode != 0:
                raise AssertionError(f"finegpt {' '.join(args)}:\n{p.stdout}\n{p.stderr}")
        cls.shared = Shared(root, chars, out, os.path.join(out, "ckpt.bin"), model,
                            os.path.join(chars, "meta.json"), os.path.join(root, "hf"),
                            os.path.join(root, "gpt2.bin"))
        write_gpt2_vocab_model(cls.shared.gpt2)
        # The shared inputs and the corpus: no case may change them.
        cls.watched = [root, SHAKESPEARE]

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def run_case(self, c):
        if c.emulated and not (EMULATED and os.path.exists(EMULATED)):
            self.skipTest("needs finegpt_emulated")
        s = self.shared
        d = tempfile.mkdtemp(dir=self._tmp.name, prefix=c.name[:20] + "_")
        if c.setup:
            c.setup(d, s)
        fields = {"d": d, "shk": SHAKESPEARE, **{f"s_{k}": v for k, v in s._asdict().items()}}
        argv = [a.format(**fields) for a in c.argv]
        words = [w.format(**fields) for w in c.words]
        before = {w: snapshot(w) for w in self.watched}
        case_before = snapshot(d)
        devices = {p: os.stat(p).st_rdev for p in ("/dev/null", "/dev/zero")}
        p = subprocess.run([EMULATED if c.emulated else FINEGPT, *argv], cwd=d,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
                           env=dict(os.environ, OMP_NUM_THREADS="2", **(c.env or {})))
        cmd = "finegpt " + " ".join(a if len(a) < 200 else a[:100] + "..." for a in argv)
        report = (f"{cmd}\nexit {p.returncode}\nstdout:\n{p.stdout[-2000:]}\n"
                  f"stderr:\n{p.stderr[-3000:]}")
        # Exit: non-zero, and not a signal (negative) nor a shell's 128 + signal.
        self.assertNotEqual(p.returncode, 0, f"succeeded on hostile input:\n{report}")
        self.assertGreater(p.returncode, 0, f"killed by signal {-p.returncode}:\n{report}")
        self.assertLess(p.returncode, 128, f"crashed:\n{report}")
        for bad in CRASH_WORDS:
            self.assertNotIn(bad, p.stderr + p.stdout, report)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        self.assertGreater(len(lines), 0, f"nothing on stderr:\n{report}")
        self.assertLessEqual(len(lines), MAX_LINES, f"a message of {len(lines)} lines:\n{report}")
        # A few lines, not pages on one line: paths are long, echoed input must not be.
        self.assertLessEqual(len(p.stderr), MAX_CHARS + 2 * len(d), f"a long message:\n{report}")
        for w in words:
            self.assertIn(w, p.stderr, f"the message does not say {w!r}:\n{report}")
        # Nothing changed: the case's own files, the shared inputs, the device nodes.
        after = snapshot(d)
        may = lambda q: any(os.path.relpath(q, d).startswith(n) for n in c.may_change)  # noqa
        for path, what in case_before.items():
            self.assertIn(path, after, f"{path} was removed:\n{report}")
            if not may(path):
                self.assertEqual(after[path], what, f"{path} was changed:\n{report}")
        left = [q for q in after if q not in case_before and not may(q)]
        self.assertEqual(left, [], f"files left behind:\n{report}")
        for w, snap in before.items():
            self.assertEqual(snapshot(w), snap, f"{w} changed:\n{report}")
        for dev, rdev in devices.items():
            st = os.stat(dev)
            self.assertTrue(stat.S_ISCHR(st.st_mode) and st.st_rdev == rdev, f"{dev}:\n{report}")
        shutil.rmtree(d, ignore_errors=True)

    def test_the_table_is_large_and_covers_every_subcommand(self):
        self.assertGreaterEqual(len(CASES), 60)
        self.assertEqual(len({c.name for c in CASES}), len(CASES), "case names must be unique")
        commands = {c.argv[0] for c in CASES}
        for cmd in ("train", "sample", "eval", "prepare", "export", "bench", "info", "plan",
                    "tokenize", "detokenize", "version", "report", "download"):
            self.assertIn(cmd, commands)


def _make(c):
    def test(self):
        self.run_case(c)
    test.__doc__ = f"{c.name}: finegpt {' '.join(c.argv)}"[:200]
    return test


for _c in CASES:
    setattr(Hostile, "test_" + _c.name, _make(_c))


if __name__ == "__main__":
    unittest.main()
