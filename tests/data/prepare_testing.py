"""Helpers for the `finegpt prepare` tests: running it, reading shards as llm.c does, and the
shard layout computed here independently -- llm.c's dev/data/fineweb.py main loop ported line by
line (documents shorter than a shard, as fineweb.py requires) and a general reference (the
token stream cut into shards) for the cases fineweb.py cannot do (documents longer than a shard,
--val-tokens, --max-tokens).

The hidden `--tokenizer test-bytes` maps each byte to its value and separates documents with
256, so the documents finegpt read can be recovered exactly from its shards.
"""
import glob
import importlib.util
import json
import os
import subprocess
import tempfile
import unittest

import numpy as np

BIN = os.environ.get("FINEGPT_BIN", "")
# The fixture writers (datasets) work offline and quietly.
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
SEP = 256


def _arrow_in_build():
    if not BIN:
        return False
    r = subprocess.run([BIN, "info"], capture_output=True, text=True, timeout=60)
    return "no Arrow support" not in r.stdout


ARROW = _arrow_in_build()
needs_arrow = unittest.skipUnless(ARROW, "this build has no Arrow support (FINEGPT_ARROW=OFF)")


def setUpModule():
    if not BIN or not os.access(BIN, os.X_OK):
        raise RuntimeError("set FINEGPT_BIN to the finegpt binary (ctest does)")


def prepare(*args, timeout=300, **kw):
    return subprocess.run([BIN, "prepare", *map(str, args)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout, **kw)


def read_shard(path):
    """An llm.c token shard as llm.c's loader reads it; checks the header on the way."""
    raw = np.fromfile(path, dtype=np.uint8)
    assert raw.size >= 1024, f"{path}: {raw.size} bytes"
    header = raw[:1024].view(np.int32)
    assert header[0] == 20240520 and header[1] == 1, header[:3]
    assert not header[3:].any(), "unused header fields must be 0"
    n = int(header[2])
    assert raw.size == 1024 + 2 * n, (path, raw.size, n)
    return raw[1024:].view(np.uint16)


def shard_names(out):
    """The shards in `out`, val first then train, as the loader orders them."""
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(out, "*.bin")))
    return [n for n in names if "_val_" in n] + [n for n in names if "_train_" in n]


def folder_shards(out):
    """{file name: bytes} of every shard in `out`."""
    out_files = {}
    for n in shard_names(out):
        with open(os.path.join(out, n), "rb") as f:
            out_files[n] = f.read()
    return out_files


def stream(out):
    parts = [read_shard(os.path.join(out, n)) for n in shard_names(out)]
    return np.concatenate(parts) if parts else np.zeros(0, np.uint16)


def docs_from_stream(tokens):
    """test-bytes shards -> the documents as bytes (each begins with the separator)."""
    tokens = np.asarray(tokens)
    cuts = np.flatnonzero(tokens == SEP)
    assert len(tokens) == 0 or (len(cuts) and cuts[0] == 0), "the stream must start with a separator"
    ends = list(cuts[1:]) + [len(tokens)]
    return [tokens[a + 1:b].astype(np.uint8).tobytes() for a, b in zip(cuts, ends)]


def prepared_docs(out):
    return docs_from_stream(stream(out))


def meta(out):
    with open(os.path.join(out, "meta.json"), encoding="utf-8") as f:
        return json.load(f)


def datafile_bytes(tokens):
    """llm.c's dev/data/data_common.write_datafile for GPT-2: header 20240520, 1, count; uint16."""
    assert len(tokens) < 2**31
    header = np.zeros(256, dtype=np.int32)
    header[0], header[1], header[2] = 20240520, 1, len(tokens)
    return header.tobytes() + np.asarray(tokens, dtype=np.uint16).tobytes()


def fineweb_py_layout(doc_tokens, shard_size, name):
    """llm.c dev/data/fineweb.py's loop over tokenize(doc) = [eot] + encode_ordinary(text)
    (here: already tokenized, the separator included), returning {filename: file bytes}."""
    files = {}
    shard_index = 0
    all_tokens_np = np.empty((shard_size,), dtype=np.uint16)
    token_count = 0
    for tokens in doc_tokens:
        tokens = np.asarray(tokens, dtype=np.uint16)
        if token_count + len(tokens) < shard_size:
            all_tokens_np[token_count:token_count + len(tokens)] = tokens
            token_count += len(tokens)
        else:
            split = "val" if shard_index == 0 else "train"
            filename = f"{name}_{split}_{shard_index:06d}.bin"
            remainder = shard_size - token_count
            all_tokens_np[token_count:token_count + remainder] = tokens[:remainder]
            files[filename] = datafile_bytes(all_tokens_np.tolist())
            shard_index += 1
            all_tokens_np[0:len(tokens) - remainder] = tokens[remainder:]
            token_count = len(tokens) - remainder
    if token_count != 0:
        split = "val" if shard_index == 0 else "train"
        filename = f"{name}_{split}_{shard_index:06d}.bin"
        files[filename] = datafile_bytes(all_tokens_np[:token_count].tolist())
    return files


def reference_layout(doc_tokens, shard_size, name, val_tokens=0, max_tokens=0):
    """The same layout for any document length: the token stream cut into shards."""
    s = np.concatenate([np.asarray(t, dtype=np.uint16) for t in doc_tokens])
    if max_tokens:
        s = s[:max_tokens]
    files, k, at = {}, 0, 0
    while at < len(s):
        size = val_tokens if (k == 0 and val_tokens) else shard_size
        split = "val" if k == 0 else "train"
        files[f"{name}_{split}_{k:06d}.bin"] = datafile_bytes(s[at:at + size])
        at += size
        k += 1
    return files


def byte_tokens(docs):
    """test-bytes tokenization of each document (str or bytes): [256] + its bytes."""
    out = []
    for d in docs:
        b = d.encode("utf-8") if isinstance(d, str) else d
        out.append([SEP] + list(b))
    return out


def as_bytes(docs):
    return [d.encode("utf-8") if isinstance(d, str) else d for d in docs]


def rank_file():
    """tiktoken's gpt2.tiktoken: $FINEGPT_GPT2_RANKS, the openai-whisper package's copy (which
    scripts/setup.sh verifies and copies), or build/assets."""
    cands = [os.environ.get("FINEGPT_GPT2_RANKS", "")]
    spec = importlib.util.find_spec("whisper")
    if spec and spec.submodule_search_locations:
        cands.append(os.path.join(spec.submodule_search_locations[0], "assets", "gpt2.tiktoken"))
    root = os.environ.get("FINEGPT_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
    cands.append(os.path.join(root, "build", "assets", "gpt2.tiktoken"))
    for c in cands:
        if c and os.path.isfile(c):
            return c
    return None


def tiktoken_gpt2():
    """tiktoken's gpt2 encoding loaded offline from the rank file (pattern from tiktoken_ext)."""
    import tiktoken
    import tiktoken.load
    from tiktoken_ext.openai_public import r50k_pat_str
    return tiktoken.Encoding(name="gpt2", pat_str=r50k_pat_str,
                             mergeable_ranks=tiktoken.load.load_tiktoken_bpe(rank_file()),
                             special_tokens={"<|endoftext|>": 50256})


class PrepareCase(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="finegpt_prepare_")
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def write(self, name, data):
        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        return p

    def prepare_ok(self, *args, out=None, tokenizer="test-bytes"):
        out = out or self.path("out")
        r = prepare("--tokenizer", tokenizer, "--out", out, "--quiet", *args)
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertNoTemp(out)
        return out, r

    def docs_of(self, *args, **kw):
        """Documents finegpt reads from the inputs in args (test-bytes)."""
        out, _ = self.prepare_ok(*args, **kw)
        return prepared_docs(out)

    def assertNoTemp(self, folder):
        for root, _, files in os.walk(folder):
            for f in files:
                self.assertNotIn(".tmp", f, f"temporary file left: {os.path.join(root, f)}")

    def assertError(self, r, *needles, out=None):
        """A clean failure: non-zero exit (no crash), one line on stderr naming the problem, and
        no shard in `out`."""
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertGreater(r.returncode, 0, f"killed by signal {-r.returncode}: {r.stderr}")
        lines = [l for l in r.stderr.split("\n") if l.strip()]
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("finegpt prepare: error: "), lines[0])
        for n in needles:
            self.assertIn(n, lines[0])
        if out and os.path.isdir(out):
            self.assertNoTemp(out)
        return lines[0]
