"""The README's commands, run as written (README.md, "Using it").

Every fenced `sh` block of the README's "Using it" section is run line by line with bash, in a
fresh folder laid out like the clone's root (build/, configs/, corpora/ linked from this
checkout), in the order shown. The FineWeb block runs against a stand-in hub on 127.0.0.1
(tests/net/fake_hub.py, named by HF_ENDPOINT) serving one Parquet file in FineWeb's layout and
schema written here with pyarrow (`sample/10BT/000_00000.parquet` of HuggingFaceFW/fineweb, the
text of tiny Shakespeare cut into documents). The only change to a command is the one the README
states: `--max_iters=20 --eval_interval=10 --eval_iters=2` added to `train` (not to a
`--dry_run`). A line that is not a finegpt command, a command that fails, a README that no
longer shows every subcommand in the order of a user's day, or output that is not what the
comment beside it promises fails the test.
"""
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "data"))
sys.path.insert(0, os.path.join(HERE, "..", "net"))
from fake_hub import FakeHub, Repo  # noqa: E402
from finegpt_testing import FINEGPT, ROOT, SHAKESPEARE  # noqa: E402
from prepare_testing import tiktoken_gpt2  # noqa: E402

README = os.path.join(ROOT, "README.md")
TRAIN_OVERRIDES = ["--max_iters=20", "--eval_interval=10", "--eval_iters=2"]
ORDER = ["prepare", "train", "report", "sample", "eval", "export", "bench", "plan", "tokenize",
         "info"]


def readme_blocks(text):
    """The fenced sh blocks of the "## Using it" section, as lists of command lines."""
    start = text.index("\n## Using it\n")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end >= 0 else len(text)]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [[l for l in b.splitlines() if l.strip()] for b in blocks]


def fineweb_standin(folder):
    """One Parquet file with FineWeb's columns, its documents the paragraphs of Shakespeare;
    returns its bytes (the file is written in `folder`)."""
    with open(SHAKESPEARE, encoding="utf-8") as f:
        docs = [d for d in f.read().split("\n\n") if d.strip()][:2000]
    n = len(docs)
    table = pa.table({
        "text": docs,
        "id": [f"<urn:uuid:{i:08x}-0000-0000-0000-000000000000>" for i in range(n)],
        "dump": ["CC-MAIN-2024-10"] * n,
        "url": [f"https://example.org/{i}" for i in range(n)],
        "date": ["2024-02-20T00:00:00Z"] * n,
        "file_path": ["s3://commoncrawl/crawl-data/CC-MAIN-2024-10/x.warc.gz"] * n,
        "language": ["en"] * n,
        "language_score": np.full(n, 0.9, dtype=np.float64),
        "token_count": np.zeros(n, dtype=np.int64),
    })
    os.makedirs(folder, exist_ok=True)
    pq.write_table(table, os.path.join(folder, "000_00000.parquet"), row_group_size=500)
    with open(os.path.join(folder, "000_00000.parquet"), "rb") as f:
        return f.read()


class Readme(unittest.TestCase):
    def test_readme_commands_run_as_written(self):
        with open(README, encoding="utf-8") as f:
            blocks = readme_blocks(f.read())
        self.assertGreaterEqual(len(blocks), 2, "README's Using it section lost its blocks")
        lines = [line for b in blocks for line in b]
        commands = [shlex.split(line, comments=True) for line in lines]
        for c in commands:
            self.assertEqual(c[0], "build/finegpt", f"README runs something else: {c}")
        subcommands = [c[1] for c in commands]
        firsts = [subcommands.index(s) for s in ORDER if s in subcommands]
        self.assertEqual(len(firsts), len(ORDER), f"README misses one of {ORDER}: {subcommands}")
        self.assertEqual(firsts, sorted(firsts), f"README's order is not {ORDER}: {subcommands}")

        with tempfile.TemporaryDirectory() as clone, FakeHub() as hub:
            os.symlink(os.path.dirname(os.path.abspath(FINEGPT)), os.path.join(clone, "build"))
            for name in ("configs", "corpora"):
                os.symlink(os.path.join(ROOT, name), os.path.join(clone, name))
            with tempfile.TemporaryDirectory() as gen:
                parquet = fineweb_standin(gen)
            hub.add(Repo("dataset", "HuggingFaceFW/fineweb",
                         {"sample/10BT/000_00000.parquet": parquet, "README.md": b"# FineWeb\n"},
                         lfs=["sample/10BT/000_00000.parquet"]))
            env = dict(os.environ, HF_ENDPOINT=hub.endpoint, HF_HOME=os.path.join(clone, "hf"))
            env.pop("HF_TOKEN", None)
            outputs = {}
            for i, c in enumerate(commands):
                if c[1] == "train" and "--dry_run" not in c:
                    c = c + TRAIN_OVERRIDES
                t0 = time.time()
                p = subprocess.run(c, cwd=clone, capture_output=True, text=True, timeout=900,
                                   env=env)
                print(f"{time.time() - t0:7.1f} s  {shlex.join(c)}", file=sys.stderr)
                # `plan --check` answers "does not fit" with exit 1, as its comment says.
                expected = 1 if c[1:3] == ["plan", "--check"] and "exit 1" in lines[i] else 0
                self.assertEqual(p.returncode, expected,
                                 f"README command: {shlex.join(c)}\n{p.stdout}\n{p.stderr}")
                if expected:
                    self.assertIn("does not fit", p.stdout)
                outputs.setdefault(c[1], []).append(p.stdout)

            # What each comment promises.
            page = os.path.join(clone, "out-shakespeare-char", "report.html")
            self.assertEqual(outputs["report"][0], "wrote out-shakespeare-char/report.html\n")
            with open(page, encoding="utf-8") as f:
                html = f.read()
            for what in ("<svg", "Loss", "Learning rate", "Configuration", "Memory plan"):
                self.assertIn(what, html)
            samples = [s for s in outputs["sample"][0].split("---------------\n") if s.strip()]
            self.assertEqual(len(samples), 2)
            self.assertTrue(all(s.startswith("ROMEO:") for s in samples), samples)
            self.assertRegex(outputs["eval"][0], r"loss")
            with open(os.path.join(clone, "model.bin"), "rb") as f:
                header = np.frombuffer(f.read(1024), dtype=np.int32)
            self.assertEqual(header[0], 20240326)  # llm.c's model file magic
            self.assertEqual(sorted(os.listdir(os.path.join(clone, "hf-shakespeare"))),
                             ["config.json", "merges.txt", "model.safetensors", "vocab.json"])
            with open(os.path.join(ROOT, "corpora", "README.md"), encoding="utf-8") as f:
                expected = tiktoken_gpt2().encode_ordinary(f.read())
            self.assertEqual([int(t) for t in outputs["tokenize"][0].split()], expected)
            self.assertTrue(any(n.startswith("fineweb_val_") for n in
                                os.listdir(os.path.join(clone, "data", "fineweb"))))
            # download wrote the hub's bytes; prepare from the hub wrote the same shards.
            with open(os.path.join(clone, "fineweb", "sample", "10BT", "000_00000.parquet"),
                      "rb") as f:
                self.assertEqual(f.read(), parquet)
            local = sorted(os.listdir(os.path.join(clone, "data", "fineweb")))
            streamed = sorted(os.listdir(os.path.join(clone, "data", "fineweb-hub")))
            bins = [n for n in local if n.endswith(".bin")]
            self.assertTrue(bins)
            self.assertEqual([n.replace("fineweb-hub_", "fineweb_") for n in streamed
                              if n.endswith(".bin")], bins)
            for n in bins:
                with open(os.path.join(clone, "data", "fineweb", n), "rb") as a, open(
                        os.path.join(clone, "data", "fineweb-hub",
                                     n.replace("fineweb_", "fineweb-hub_", 1)), "rb") as b:
                    self.assertEqual(a.read(), b.read(), n)


if __name__ == "__main__":
    unittest.main()
