"""`finegpt download` and `prepare --input hub:...` against a stand-in hub on 127.0.0.1
(fake_hub.py: Python's http.server with the hub's API answers and URL layout). The Parquet files
are written by pyarrow, the digests the stand-in lists are hashlib's, and the model cache is read
back with huggingface_hub's own cache lookup; nothing here is computed by finegpt.
"""
import hashlib
import json
import os
import resource
import subprocess
import sys
import unittest

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from fake_hub import FakeHub, Repo  # noqa: E402
from finegpt_testing import FINEGPT, SHAKESPEARE, CliTest, read  # noqa: E402


def parquet_bytes(tmp, index, docs_per_file=400):
    """One Parquet file in FineWeb's schema (a few row groups), its documents tiny Shakespeare's
    paragraphs with a file-specific prefix; returned as bytes."""
    with open(SHAKESPEARE, encoding="utf-8") as f:
        paras = [p for p in f.read().split("\n\n") if p.strip()]
    docs = [f"[{index}:{i}] " + paras[(index * 997 + i) % len(paras)] for i in range(docs_per_file)]
    n = len(docs)
    table = pa.table({
        "text": docs,
        "id": [f"<urn:uuid:{index:04x}{i:04x}>" for i in range(n)],
        "dump": ["CC-MAIN-2024-10"] * n,
        "url": [f"https://example.org/{index}/{i}" for i in range(n)],
        "language_score": np.full(n, 0.9, dtype=np.float64),
        "token_count": np.zeros(n, dtype=np.int64),
    })
    path = os.path.join(tmp, f"gen_{index}.parquet")
    pq.write_table(table, path, row_group_size=150)
    data = read(path)
    os.remove(path)
    return data


def fineweb_repo(tmp, n_files=3, lfs=True, docs_per_file=400):
    files = {f"sample/10BT/{k:03d}_00000.parquet": parquet_bytes(tmp, k, docs_per_file)
             for k in range(n_files)}
    files["data/CC-MAIN-2024-10/000_00000.parquet"] = parquet_bytes(tmp, 99)
    files["README.md"] = b"---\nlicense: odc-by\n---\n# FineWeb stand-in\n"
    lfs_paths = [p for p in files if p.endswith(".parquet")] if lfs else []
    return Repo("dataset", "HuggingFaceFW/fineweb", files, lfs=lfs_paths)


class HubTest(CliTest):
    @classmethod
    def setUpClass(cls):
        version = subprocess.run([FINEGPT, "--version"], capture_output=True, text=True).stdout
        if "no libcurl" in version:
            raise unittest.SkipTest("this build has no libcurl (FINEGPT_CURL=OFF)")

    def setUp(self):
        super().setUp()
        self.hub = FakeHub(token="hf_secret_token")
        self.hub.__enter__()
        self.addCleanup(self.hub.__exit__)

    def finegpt(self, *args, token=None, limit_bytes=None, timeout=300):
        env = dict(os.environ, HF_ENDPOINT=self.hub.endpoint, FINEGPT_HTTP_BACKOFF="0.01",
                   HF_HOME=os.path.join(self.tmp, "hf_home"))
        env.pop("HF_TOKEN", None)
        env.pop("HF_HUB_CACHE", None)
        if token:
            env["HF_TOKEN"] = token

        def limit():
            if limit_bytes is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
        return subprocess.run([FINEGPT, *map(str, args)], env=env, capture_output=True, text=True,
                              timeout=timeout, cwd=self.tmp, preexec_fn=limit)

    def assertTreeHolds(self, folder, expected):
        """`folder` holds exactly the files `expected` maps (relative path -> bytes)."""
        found = {}
        for root, _, names in os.walk(folder):
            for n in names:
                p = os.path.join(root, n)
                found[os.path.relpath(p, folder)] = read(p)
        self.assertEqual(sorted(found), sorted(expected))
        for k in expected:
            self.assertEqual(found[k], expected[k], k)

    def sample(self, repo):
        return {p: d for p, d in repo.files.items() if p.startswith("sample/10BT/")}


class Download(HubTest):
    def test_dataset_config_byte_equal_paginated(self):
        repo = self.hub.add(fineweb_repo(self.tmp, n_files=3))
        out = os.path.join(self.tmp, "fineweb")
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-10BT", "--to", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTreeHolds(out, self.sample(repo))  # not README.md, not the other config
        self.assertIn("3 files", p.stdout)
        # Pagination: the listing came in pages of two (a cursor from the Link header).
        self.assertTrue(any("cursor=" in q for q, _ in self.hub.log), self.hub.log)
        # LFS files came through the redirect to the storage address.
        self.assertEqual(len([q for q, _ in self.hub.log if q.startswith("/cdn/")]), 3)

        # Run again: complete files are not fetched again.
        before = len(self.hub.log)
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-10BT", "--to", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertFalse([q for q, _ in self.hub.log[before:] if "/resolve/" in q])

    def test_max_files_and_folder_name_and_non_lfs_files(self):
        repo = self.hub.add(fineweb_repo(self.tmp, n_files=3, lfs=False))  # checked by git blob id
        out = os.path.join(self.tmp, "fw")
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample/10BT", "--to", out,
                         "--max-files", "2", "--parallel", "1")
        self.assertEqual(p.returncode, 0, p.stderr)
        want = dict(sorted(self.sample(repo).items())[:2])
        self.assertTreeHolds(out, want)

    def test_dropped_connection_then_rerun_resumes_with_range(self):
        repo = self.hub.add(fineweb_repo(self.tmp, n_files=2))
        name = "sample/10BT/001_00000.parquet"
        size = len(repo.files[name])
        self.hub.faults[name] = ["drop"]
        out = os.path.join(self.tmp, "fineweb")
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-10BT", "--to", out,
                         "--retries", "0")
        self.assertCleanError(p, name, "run again to resume")
        final = os.path.join(out, name)
        self.assertFalse(os.path.exists(final))
        self.assertEqual(os.path.getsize(final + ".incomplete"), size // 2)

        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-10BT", "--to", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        ranges = [h["range"] for q, h in self.hub.log if "/resolve/" in q and "range" in h]
        self.assertEqual(ranges, [f"bytes={size // 2}-"])
        self.assertTreeHolds(out, self.sample(repo))

    def test_dropped_connection_is_resumed_within_the_run(self):
        repo = self.hub.add(fineweb_repo(self.tmp, n_files=2))
        name = "sample/10BT/000_00000.parquet"
        self.hub.faults[name] = ["drop", "drop"]
        out = os.path.join(self.tmp, "fineweb")
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-10BT", "--to", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        size = len(repo.files[name])
        half = size // 2
        ranges = [h["range"] for q, h in self.hub.log if "/resolve/" in q and "range" in h]
        self.assertEqual(ranges, [f"bytes={half}-", f"bytes={half + (size - half) // 2}-"])
        self.assertTreeHolds(out, self.sample(repo))

    def test_large_file_resumed_within_and_across_runs(self):
        """A file of many 1 MiB digest blocks, not a multiple of one: dropped halfway twice in
        one run (each try continues the running sha256), then dropped with no retries left and
        finished by a second run (which hashes the kept part first). A digest fed wrongly at a
        block boundary fails the sha256 check."""
        rng = np.random.default_rng(3)
        name = "sample/10BT/000_00000.parquet"
        data = rng.integers(0, 256, 9 * 2**20 + 12345, dtype=np.uint8).tobytes()
        self.hub.add(Repo("dataset", "HuggingFaceFW/fineweb", {name: data}, lfs=[name]))
        out = os.path.join(self.tmp, "fineweb")
        self.hub.faults[name] = ["drop", "drop"]
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-10BT", "--to", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(self.hub.requests_for(name)), 3)
        self.assertTreeHolds(out, {name: data})

        out2 = os.path.join(self.tmp, "fineweb2")
        self.hub.faults[name] = ["drop"]
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-10BT", "--to",
                         out2, "--retries", "0")
        self.assertCleanError(p, name, "run again to resume")
        self.assertEqual(os.path.getsize(os.path.join(out2, name + ".incomplete")), len(data) // 2)
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-10BT", "--to",
                         out2)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTreeHolds(out2, {name: data})

    def test_429_then_success(self):
        repo = self.hub.add(fineweb_repo(self.tmp, n_files=1))
        name = "sample/10BT/000_00000.parquet"
        self.hub.faults[name] = ["429", "429"]
        out = os.path.join(self.tmp, "fineweb")
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-10BT", "--to", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(self.hub.requests_for(name)), 3)
        self.assertTreeHolds(out, self.sample(repo))

    def test_persistent_5xx_gives_up(self):
        self.hub.add(fineweb_repo(self.tmp, n_files=1))
        name = "sample/10BT/000_00000.parquet"
        self.hub.faults[name] = ["503"] * 10
        out = os.path.join(self.tmp, "fineweb")
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-10BT", "--to", out,
                         "--retries", "2")
        self.assertCleanError(p, name, "503", "3 tries")
        self.assertEqual(len(self.hub.requests_for(name)), 3)
        self.assertFalse(os.path.exists(os.path.join(out, name)))

    def test_wrong_size_leaves_nothing(self):
        repo = self.hub.add(fineweb_repo(self.tmp, n_files=1))
        name = "sample/10BT/000_00000.parquet"
        self.hub.listed[name] = {"size": len(repo.files[name]) + 100}
        out = os.path.join(self.tmp, "fineweb")
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-10BT", "--to", out)
        self.assertCleanError(p, name, "bytes", "nothing was written")
        self.assertTreeHolds(out, {})

    def test_wrong_sha256_leaves_nothing(self):
        self.hub.add(fineweb_repo(self.tmp, n_files=1))
        name = "sample/10BT/000_00000.parquet"
        self.hub.listed[name] = {"sha256": hashlib.sha256(b"something else").hexdigest()}
        out = os.path.join(self.tmp, "fineweb")
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-10BT", "--to", out)
        self.assertCleanError(p, name, "sha256", "does not match")
        self.assertTreeHolds(out, {})

    def test_repo_that_does_not_exist(self):
        out = os.path.join(self.tmp, "x")
        p = self.finegpt("download", "nobody/nothing", "--name", "sample-10BT", "--to", out)
        self.assertCleanError(p, "no dataset 'nobody/nothing'")
        self.assertFalse(os.path.exists(out))
        p = self.finegpt("download", "nobody/nothing", "--to", out)
        self.assertCleanError(p, "no model or dataset 'nobody/nothing'")
        p = self.finegpt("download", "nobody/nothing", "--repo-type", "model")
        self.assertCleanError(p, "no model 'nobody/nothing'")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "hf_home")))

    def test_config_that_does_not_exist(self):
        self.hub.add(fineweb_repo(self.tmp, n_files=1))
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-350BT")
        self.assertCleanError(p, "no config or folder 'sample-350BT'", "sample/350BT/")

    def test_dataset_without_parquet_files(self):
        self.hub.add(Repo("dataset", "someone/jsonl-only",
                          {"data/train.jsonl": b'{"text": "a"}\n', "README.md": b"# x\n"}))
        out = os.path.join(self.tmp, "j")
        p = self.finegpt("download", "someone/jsonl-only", "--to", out)
        self.assertCleanError(p, "has no Parquet files", "README.md")
        self.assertFalse(os.path.exists(out))

    def test_token_is_sent_as_bearer(self):
        repo = Repo("dataset", "HuggingFaceFW/fineweb", fineweb_repo(self.tmp, 1).files,
                    private=True)
        self.hub.add(repo)
        out = os.path.join(self.tmp, "fineweb")
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-10BT", "--to", out)
        self.assertCleanError(p, "HF_TOKEN")
        self.hub.log.clear()
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-10BT", "--to", out,
                         token="hf_secret_token")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(self.hub.log)
        for q, h in self.hub.log:
            self.assertEqual(h.get("authorization"), "Bearer hf_secret_token", q)
        self.assertTreeHolds(out, self.sample(repo))

    def test_full_disk_keeps_the_part_and_resumes(self):
        repo = self.hub.add(fineweb_repo(self.tmp, n_files=1))
        name = "sample/10BT/000_00000.parquet"
        out = os.path.join(self.tmp, "fineweb")
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-10BT", "--to", out,
                         limit_bytes=20000)
        self.assertCleanError(p, "write failed", "run again to resume")
        self.assertFalse(os.path.exists(os.path.join(out, name)))
        kept = os.path.getsize(os.path.join(out, name + ".incomplete"))
        self.assertGreater(kept, 0)
        p = self.finegpt("download", "HuggingFaceFW/fineweb", "--name", "sample-10BT", "--to", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"bytes={kept}-", [h.get("range") for _, h in self.hub.log])
        self.assertTreeHolds(out, self.sample(repo))

    def test_model_into_the_hub_cache(self):
        rng = np.random.default_rng(0)
        files = {
            "config.json": b'{"model_type": "gpt2", "n_layer": 2}\n',
            "generation_config.json": b'{"bos_token_id": 50256}\n',
            "model.safetensors": rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes(),
            "merges.txt": b"#version: 0.2\n\xc4\xa0 t\n",
            "vocab.json": b'{"!": 0}\n',
            "onnx/decoder_model.onnx": b"not taken",
            "flax_model.msgpack": b"not taken either",
        }
        repo = self.hub.add(Repo("model", "openai-community/gpt2", files,
                                 lfs=["model.safetensors", "flax_model.msgpack"]))
        p = self.finegpt("download", "openai-community/gpt2")
        self.assertEqual(p.returncode, 0, p.stderr)
        cache = os.path.join(self.tmp, "hf_home", "hub")
        base = os.path.join(cache, "models--openai-community--gpt2")
        self.assertEqual(read(os.path.join(base, "refs", "main")).decode(), repo.sha)
        snap = os.path.join(base, "snapshots", repo.sha)
        taken = ["config.json", "generation_config.json", "merges.txt", "model.safetensors",
                 "vocab.json"]
        self.assertEqual(sorted(os.listdir(snap)), taken)
        for name in taken:
            self.assertTrue(os.path.islink(os.path.join(snap, name)))
            self.assertEqual(read(os.path.join(snap, name)), files[name])
        # huggingface_hub's own reader of its cache finds every file.
        from huggingface_hub import try_to_load_from_cache
        for name in taken:
            path = try_to_load_from_cache("openai-community/gpt2", name, cache_dir=cache)
            self.assertIsInstance(path, str, name)
            self.assertEqual(read(path), files[name])

    def test_model_into_a_folder(self):
        files = {"config.json": b"{}\n", "model.safetensors": b"\x08" * 5000}
        self.hub.add(Repo("model", "openai-community/gpt2", files, lfs=["model.safetensors"]))
        out = os.path.join(self.tmp, "gpt2")
        p = self.finegpt("download", "openai-community/gpt2", "--to", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTreeHolds(out, files)

    def test_bad_arguments(self):
        for args, words in [
                (["fineweb"], "not a hub repository name"),
                (["a/b/c"], "not a hub repository name"),
                ([], "give the repository"),
                (["a/b", "--parallel", "0"], "--parallel"),
                (["a/b", "--retries", "-1"], "--retries"),
                (["a/b", "--repo-type", "space"], "--repo-type"),
                (["a/b", "--max-files", "x"], "--max_files")]:
            p = self.finegpt("download", *args)
            self.assertCleanError(p, words)
        env_bad = dict(os.environ, HF_ENDPOINT="ftp://example.org")
        p = subprocess.run([FINEGPT, "download", "a/b"], env=env_bad, capture_output=True,
                           text=True, timeout=60)
        self.assertCleanError(p, "HF_ENDPOINT")


class PrepareFromHub(HubTest):
    def test_hub_input_streams_and_equals_local_prepare(self):
        n = 6
        repo = self.hub.add(fineweb_repo(self.tmp, n_files=n))
        staging = os.path.join(self.tmp, "a", ".hub-download")
        on_disk = []

        def count_parquet(_repo, _path):
            # Disk use is bounded: when a file is asked for, at most two finished ones wait.
            done = 0
            for root, _, names in os.walk(staging):
                done += len([x for x in names if x.endswith(".parquet")])
            on_disk.append(done)
        self.hub.on_file_request = count_parquet

        common = ["--tokenizer", "gpt2", "--shard-tokens", "20000", "--name", "fw", "--quiet"]
        p = self.finegpt("prepare", "--input", "hub:HuggingFaceFW/fineweb/sample-10BT",
                         "--out", os.path.join(self.tmp, "a"), *common)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(on_disk), n)
        self.assertLessEqual(max(on_disk), 2, on_disk)
        self.assertFalse(os.path.exists(staging))

        local = os.path.join(self.tmp, "local")
        for path, data in self.sample(repo).items():
            os.makedirs(os.path.dirname(os.path.join(local, path)), exist_ok=True)
            with open(os.path.join(local, path), "wb") as f:
                f.write(data)
        p = self.finegpt("prepare", "--input", os.path.join(local, "sample", "10BT"),
                         "--out", os.path.join(self.tmp, "b"), *common)
        self.assertEqual(p.returncode, 0, p.stderr)
        shards = sorted(x for x in os.listdir(os.path.join(self.tmp, "b")) if x.endswith(".bin"))
        self.assertGreater(len(shards), 2)
        self.assertEqual(sorted(x for x in os.listdir(os.path.join(self.tmp, "a"))
                                if x.endswith(".bin")), shards)
        for s in shards:
            self.assertEqual(read(os.path.join(self.tmp, "a", s)),
                             read(os.path.join(self.tmp, "b", s)), s)
        meta = read(os.path.join(self.tmp, "a", "meta.json")).decode()
        self.assertIn(f"hub:HuggingFaceFW/fineweb@{repo.sha}/sample/10BT/000_00000.parquet", meta)

        # Run again: already complete, nothing downloaded.
        before = len(self.hub.log)
        p = self.finegpt("prepare", "--input", "hub:HuggingFaceFW/fineweb/sample-10BT",
                         "--out", os.path.join(self.tmp, "a"), *common)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("already complete", p.stdout)
        self.assertFalse([q for q, _ in self.hub.log[before:] if "/resolve/" in q])

    def test_interrupted_hub_prepare_continues_to_the_same_shards(self):
        # Enough documents that the reader's first batches (4096 documents) end before the last
        # file, so that shards are finished before its failure arrives.
        repo = self.hub.add(fineweb_repo(self.tmp, n_files=4, docs_per_file=3000))
        common = ["--tokenizer", "gpt2", "--shard-tokens", "20000", "--name", "fw", "--quiet"]
        whole = os.path.join(self.tmp, "whole")
        p = self.finegpt("prepare", "--input", "hub:HuggingFaceFW/fineweb/sample-10BT",
                         "--out", whole, *common)
        self.assertEqual(p.returncode, 0, p.stderr)

        # The last file fails for good (six 503s: the first try and five retries): the run stops
        # with one line, keeps the shards it finished, and leaves no download behind.
        last = "sample/10BT/003_00000.parquet"
        self.hub.faults[last] = ["503"] * 6
        out = os.path.join(self.tmp, "o")
        p = self.finegpt("prepare", "--input", "hub:HuggingFaceFW/fineweb/sample-10BT",
                         "--out", out, *common)
        self.assertCleanError(p, last, "503")
        self.assertTrue(os.path.exists(os.path.join(out, "prepare_state.json")))
        self.assertFalse(os.path.exists(os.path.join(out, ".hub-download")))
        finished = [x for x in os.listdir(out) if x.endswith(".bin")]
        self.assertTrue(finished)

        # The rerun starts at the file holding the first record not yet written (3000 records
        # per file) and does not fetch the files before it.
        with open(os.path.join(out, "prepare_state.json")) as f:
            resume_file = json.load(f)["records_done"] // 3000
        self.assertGreaterEqual(resume_file, 1)
        before = len(self.hub.log)
        p = self.finegpt("prepare", "--input", "hub:HuggingFaceFW/fineweb/sample-10BT",
                         "--out", out, *common)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("continued an interrupted run", p.stdout)
        fetched = sorted({q.split("/resolve/")[1].split("/", 1)[1] for q, _ in
                          self.hub.log[before:] if "/resolve/" in q})
        self.assertEqual(fetched, [f"sample/10BT/{k:03d}_00000.parquet"
                                   for k in range(resume_file, 4)])
        shards = sorted(x for x in os.listdir(whole) if x.endswith(".bin"))
        self.assertEqual(sorted(x for x in os.listdir(out) if x.endswith(".bin")), shards)
        for s in shards:
            self.assertEqual(read(os.path.join(out, s)), read(os.path.join(whole, s)), s)
        self.assertTrue(repo)

    def test_hub_input_errors(self):
        self.hub.add(Repo("dataset", "someone/jsonl-only", {"data/train.jsonl": b"{}\n"}))
        out = os.path.join(self.tmp, "o")
        for spec, words in [("hub:nobody/nothing/x", "no dataset 'nobody/nothing'"),
                            ("hub:someone/jsonl-only", "has no Parquet files"),
                            ("hub:fineweb", "hub:ORG/NAME")]:
            p = self.finegpt("prepare", "--input", spec, "--out", out, "--quiet")
            self.assertCleanError(p, words)
            self.assertFalse(os.path.exists(out))

    def test_a_bad_file_mid_stream_is_one_line_and_leaves_no_download(self):
        repo = self.hub.add(fineweb_repo(self.tmp, n_files=3))
        name = "sample/10BT/002_00000.parquet"
        self.hub.listed[name] = {"sha256": "0" * 64}
        out = os.path.join(self.tmp, "o")
        p = self.finegpt("prepare", "--input", "hub:HuggingFaceFW/fineweb/sample-10BT",
                         "--out", out, "--quiet", "--shard-tokens", "20000")
        self.assertCleanError(p, name, "sha256")
        self.assertFalse(os.path.exists(os.path.join(out, ".hub-download")))
        self.assertTrue(repo)


if __name__ == "__main__":
    unittest.main()
