"""`finegpt prepare` output in llm.c's layout (src/data/prepare.h): byte-equal to what llm.c's
dev/data/fineweb.py writes for the same documents (its loop is ported in prepare_testing.py),
shard boundaries, --val-tokens / --max-tokens / --max-docs, thread-count independence, restart
after SIGKILL and after a full disk, refusing another run's folder, and `finegpt train` on the
result. The layout is checked with the hidden test-bytes tokenizer (token = byte, separator
256); the GPT-2 tests compare with tiktoken itself and run once finegpt's GPT-2 tokenizer is in
the build (it lands separately).
"""
import json
import os
import resource
import signal
import subprocess
import time
import unittest

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from prepare_testing import (BIN, PrepareCase, byte_tokens, folder_shards,  # noqa: F401
                             fineweb_py_layout, meta, needs_arrow, prepare,
                             rank_file,
                             read_shard, reference_layout, setUpModule, shard_names,
                             tiktoken_gpt2)

SHAKESPEARE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "corpora",
                           "tinyshakespeare.txt")  # corpora/README.md


def make_docs(n, seed=0, max_len=300):
    rng = np.random.default_rng(seed)
    words = ["the", "of", "caf\u00e9", "na\u00efve", "\u4e2d\u6587", "\U0001F680", "don't",
             "  ", "\n", "1234", "!!", "<|endoftext|>", "THE", "\t"]
    docs = []
    for i in range(n):
        k = int(rng.integers(1, max_len // 4))
        docs.append(" ".join(words[j] for j in rng.integers(0, len(words), k)) + f" {i}")
    return docs


def write_jsonl(path, docs):
    with open(path, "w", encoding="utf-8") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"id": i, "text": d}) + "\n")
    return path


class Layout(PrepareCase):
    def test_equals_fineweb_py(self):
        docs = make_docs(400)
        src = write_jsonl(self.path("d.jsonl"), docs)
        out, _ = self.prepare_ok("--input", src, "--shard-tokens", "1000", "--name", "fw")
        want = fineweb_py_layout(byte_tokens(docs), 1000, "fw")
        self.assertGreater(len(want), 20)
        got = folder_shards(out)
        self.assertEqual(sorted(got), sorted(want))
        for name in want:
            self.assertEqual(got[name], want[name], name)
        m = meta(out)
        self.assertEqual(m["documents"], len(docs))
        self.assertEqual(m["tokens"], sum(len(t) for t in byte_tokens(docs)))
        self.assertEqual([s["file"] for s in m["shards"]], shard_names(out))
        self.assertEqual(m["shard_tokens"], 1000)
        self.assertEqual(m["tokenizer"], "test-bytes")
        self.assertEqual(m["sources"][0]["bytes"], os.path.getsize(src))

    def test_documents_longer_than_shards_and_exact_fit(self):
        docs = ["a" * 4999, "b" * 9, "c" * 2500, "d" * 1]  # 5000 + 10: the 2nd shard ends exactly
        src = write_jsonl(self.path("d.jsonl"), docs)
        out, _ = self.prepare_ok("--input", src, "--shard-tokens", "1000", "--name", "x")
        want = reference_layout(byte_tokens(docs), 1000, "x")
        self.assertEqual(folder_shards(out), want)
        self.assertEqual(len(want), 8)

    def test_val_tokens(self):
        docs = make_docs(200, seed=1)
        src = write_jsonl(self.path("d.jsonl"), docs)
        out, _ = self.prepare_ok("--input", src, "--shard-tokens", "1000", "--val-tokens", "123",
                                 "--name", "v")
        self.assertEqual(folder_shards(out), reference_layout(byte_tokens(docs), 1000, "v", 123))
        self.assertEqual(len(read_shard(os.path.join(out, "v_val_000000.bin"))), 123)
        self.assertEqual(meta(out)["val_tokens"], 123)

    def test_max_tokens_and_max_docs(self):
        docs = make_docs(300, seed=2)
        src = write_jsonl(self.path("d.jsonl"), docs)
        out, _ = self.prepare_ok("--input", src, "--shard-tokens", "1000", "--max-tokens", "4321",
                                 "--name", "m", out=self.path("o1"))
        self.assertEqual(folder_shards(out),
                         reference_layout(byte_tokens(docs), 1000, "m", max_tokens=4321))
        out, _ = self.prepare_ok("--input", src, "--shard-tokens", "1000", "--max-docs", "17",
                                 "--name", "m", out=self.path("o2"))
        self.assertEqual(folder_shards(out), reference_layout(byte_tokens(docs[:17]), 1000, "m"))
        self.assertEqual(meta(out)["documents"], 17)

    @needs_arrow
    def test_threads_do_not_change_the_output(self):
        docs = make_docs(3000, seed=3, max_len=2000)
        p = self.path("d.parquet")
        pq.write_table(pa.table({"text": docs}), p, row_group_size=100)
        outs = []
        for threads in ["1", "2"]:
            out, _ = self.prepare_ok("--input", p, "--shard-tokens", "50000", "--threads", threads,
                                     "--name", "t", out=self.path("t" + threads))
            outs.append(folder_shards(out))
        self.assertEqual(outs[0], outs[1])
        self.assertEqual(outs[0], reference_layout(byte_tokens(docs), 50000, "t"))

    def test_char_mode_threads_and_long_documents(self):
        big = "".join(make_docs(2000, seed=4, max_len=2000))  # encoded in pieces, in parallel
        self.assertGreater(len(big.encode()), 2 << 20)
        docs = make_docs(500, seed=5) + [big]
        src = write_jsonl(self.path("d.jsonl"), docs)
        text = "".join(docs)
        chars = sorted(set(text))
        cut = int(len(text) * 0.9)
        stoi = {c: i for i, c in enumerate(chars)}
        outs = []
        for threads in ["1", "2"]:
            out, _ = self.prepare_ok("--input", src, "--threads", threads, "--name", "c",
                                     out=self.path("c" + threads), tokenizer="char")
            outs.append(folder_shards(out))
            self.assertEqual(meta(out)["itos"], chars)
        self.assertEqual(outs[0], outs[1])
        train = read_shard(self.path("c1", "c_train_000001.bin"))
        val = read_shard(self.path("c1", "c_val_000000.bin"))
        np.testing.assert_array_equal(train, [stoi[c] for c in text[:cut]])
        np.testing.assert_array_equal(val, [stoi[c] for c in text[cut:]])


    def test_char_mode_limits_cut_the_vocabulary_too(self):
        docs = ["abc" * 400, "xyz\u00e9", "QRS"]  # characters after the cut are not in itos
        src = write_jsonl(self.path("d.jsonl"), docs)
        for flag, value, text in [("--max-tokens", "1000", ("abc" * 400)[:1000]),
                                  ("--max-docs", "2", "abc" * 400 + "xyz\u00e9")]:
            with self.subTest(flag=flag):
                out, _ = self.prepare_ok("--input", src, flag, value, "--name", "c",
                                         out=self.path("c" + flag), tokenizer="char")
                chars = sorted(set(text))
                stoi = {c: i for i, c in enumerate(chars)}
                self.assertEqual(meta(out)["itos"], chars)
                cut = int(len(text) * 0.9)
                np.testing.assert_array_equal(read_shard(os.path.join(out, "c_train_000001.bin")),
                                              [stoi[c] for c in text[:cut]])
                np.testing.assert_array_equal(read_shard(os.path.join(out, "c_val_000000.bin")),
                                              [stoi[c] for c in text[cut:]])


class Restart(PrepareCase):
    def reference(self, src, *args):
        out, _ = self.prepare_ok("--input", src, "--name", "r", *args, out=self.path("ref"))
        return folder_shards(out), meta(out)

    def assertSameAsReference(self, out, ref):
        shards, m = ref
        self.assertEqual(folder_shards(out), shards)
        self.assertEqual(meta(out), m)
        self.assertFalse(os.path.exists(os.path.join(out, "prepare_state.json")))
        self.assertNoTemp(out)

    def test_sigkill_then_rerun_is_byte_identical(self):
        docs = make_docs(3000, seed=6, max_len=800)
        src = write_jsonl(self.path("d.jsonl"), docs)
        args = ["--shard-tokens", "20000", "--val-tokens", "1111", "--threads", "2"]
        ref = self.reference(src, *args)
        self.assertGreater(len(ref[0]), 50)
        out = self.path("out")
        state = os.path.join(out, "prepare_state.json")
        kills = 0
        for target in [1, 25]:  # kill after the first shard, then again later
            p = subprocess.Popen([BIN, "prepare", "--tokenizer", "test-bytes", "--input", src,
                                  "--out", out, "--name", "r", "--quiet", *args],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.time() + 60
            while p.poll() is None and time.time() < deadline:
                if os.path.exists(state) and len(shard_names(out)) >= target:
                    p.send_signal(signal.SIGKILL)
                    kills += 1
                    break
                time.sleep(0.001)
            p.wait()
            p.stderr.close()
            if os.path.exists(os.path.join(out, "meta.json")):
                break  # finished before the kill: the rerun below is then a no-op
            for name in shard_names(out):  # every shard that looks complete is complete
                read_shard(os.path.join(out, name))
        self.assertGreater(kills, 0, "prepare finished before it could be killed")
        r = prepare("--tokenizer", "test-bytes", "--input", src, "--out", out, "--name", "r",
                    "--quiet", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("continued an interrupted run", r.stdout)
        self.assertSameAsReference(out, ref)
        r = prepare("--tokenizer", "test-bytes", "--input", src, "--out", out, "--name", "r",
                    *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("already complete", r.stdout)

    def test_full_disk_mid_shard_then_resume(self):
        docs = make_docs(300, seed=7)
        src = write_jsonl(self.path("d.jsonl"), docs)
        args = ["--shard-tokens", "3000", "--val-tokens", "500"]
        ref = self.reference(src, *args)
        out = self.path("out")

        def limit():  # files may not grow past 4 KiB: the 500-token val shard fits, no train one
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

        r = subprocess.run([BIN, "prepare", "--tokenizer", "test-bytes", "--input", src, "--out",
                            out, "--name", "r", *args], capture_output=True, text=True,
                           preexec_fn=limit, timeout=120)
        self.assertError(r, "r_train_000001.bin", "write failed", "File too large", out=out)
        self.assertEqual(shard_names(out), ["r_val_000000.bin"])
        self.assertEqual(len(read_shard(os.path.join(out, "r_val_000000.bin"))), 500)
        self.assertFalse(os.path.exists(os.path.join(out, "meta.json")))
        r = prepare("--tokenizer", "test-bytes", "--input", src, "--out", out, "--name", "r",
                    "--quiet", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertSameAsReference(out, ref)

    @needs_arrow
    def test_resume_skips_parquet_row_groups_and_arrow_batches(self):
        import datasets
        docs = make_docs(1500, seed=12)
        pq_path = self.path("d.parquet")
        pq.write_table(pa.table({"text": docs}), pq_path, row_group_size=40)
        folder = self.path("ds")
        datasets.Dataset.from_dict({"text": docs}).save_to_disk(folder, num_shards=3)
        args = ["--shard-tokens", "30000", "--val-tokens", "20000", "--name", "r"]

        def limit():  # the val shard (41 KB) fits, a train shard (61 KB) does not
            resource.setrlimit(resource.RLIMIT_FSIZE, (48 << 10, 48 << 10))

        for src in [pq_path, folder]:
            with self.subTest(input=os.path.basename(src)):
                tag = os.path.basename(src)
                ref, _ = self.prepare_ok("--input", src, *args, out=self.path("ref_" + tag))
                out = self.path("out_" + tag)
                r = subprocess.run([BIN, "prepare", "--tokenizer", "test-bytes", "--input", src,
                                    "--out", out, *args], capture_output=True, text=True,
                                   preexec_fn=limit, timeout=120)
                self.assertError(r, "File too large", out=out)
                with open(os.path.join(out, "prepare_state.json")) as f:
                    self.assertGreaterEqual(json.load(f)["records_done"], 80)  # two row groups
                self.prepare_ok("--input", src, *args, out=out)
                self.assertEqual(folder_shards(out), folder_shards(ref))
                self.assertEqual(meta(out), meta(ref))

    def test_changed_folder_is_refused(self):
        docs = make_docs(300, seed=8)
        src = write_jsonl(self.path("d.jsonl"), docs)
        out = self.path("out")

        def limit():
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

        subprocess.run([BIN, "prepare", "--tokenizer", "test-bytes", "--input", src, "--out", out,
                        "--shard-tokens", "3000", "--val-tokens", "500"], capture_output=True,
                       preexec_fn=limit, timeout=120)
        os.remove(os.path.join(out, "out_val_000000.bin"))
        r = prepare("--tokenizer", "test-bytes", "--input", src, "--out", out, "--shard-tokens",
                    "3000", "--val-tokens", "500")
        self.assertError(r, "out_val_000000.bin", "missing", "--overwrite")


class Folder(PrepareCase):
    def test_other_tokenizer_or_inputs_refused_unless_overwrite(self):
        a = self.write("a.txt", "some text here\n" * 50)
        b = self.write("b.txt", "other text\n" * 50)
        out, _ = self.prepare_ok("--input", a, tokenizer="char")
        before = folder_shards(out)
        r = prepare("--tokenizer", "test-bytes", "--input", a, "--out", out)
        self.assertError(r, out, "another prepare run", "tokenizer", "char", "--overwrite")
        r = prepare("--tokenizer", "char", "--input", b, "--out", out)
        self.assertError(r, out, "other inputs")
        r = prepare("--tokenizer", "char", "--input", a, "--out", out, "--val-fraction", "0.2")
        self.assertError(r, out, "val_fraction")
        self.assertEqual(folder_shards(out), before)
        out, _ = self.prepare_ok("--input", a, "--overwrite", "--shard-tokens", "100")
        self.assertEqual(meta(out)["tokenizer"], "test-bytes")
        self.assertEqual(len(shard_names(out)), 8)
        self.assertEqual(set(os.listdir(out)), set(shard_names(out)) | {"meta.json"})

    def test_train_finds_the_shards_by_dataset_name(self):
        docs = make_docs(400, seed=9)
        src = write_jsonl(self.path("d.jsonl"), docs)
        r = prepare("--tokenizer", "test-bytes", "--input", src, "--name", "tinyweb",
                    "--shard-tokens", "5000", "--quiet", cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.isfile(self.path("data", "tinyweb", "tinyweb_val_000000.bin")))
        cfg = self.write("config.py", "dataset = 'tinyweb'\nn_layer = 1\nn_head = 2\n"
                         "n_embd = 16\nblock_size = 16\nbatch_size = 2\nmax_iters = 3\n"
                         "eval_interval = 2\neval_iters = 1\nlog_interval = 1\n")
        t = subprocess.run([BIN, "train", cfg, "--out_dir=out"], cwd=self.tmp,
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(t.returncode, 0, t.stderr + t.stdout)
        self.assertIn("vocab 257", t.stdout)


class Gpt2(PrepareCase):
    """Shards equal, byte for byte, fineweb.py's output with tiktoken's encode_ordinary."""

    @classmethod
    def setUpClass(cls):
        cls.enc = tiktoken_gpt2()

    def expected(self, docs, shard, name):
        toks = [[50256] + self.enc.encode_ordinary(d) for d in docs]
        return fineweb_py_layout(toks, shard, name)

    def check(self, inputs, docs, shard=10000, extra=()):
        out, _ = self.prepare_ok("--input", *inputs, "--shard-tokens", shard, "--name", "g",
                                 *extra, out=self.path("g"), tokenizer=rank_file())
        self.assertEqual(folder_shards(out), self.expected(docs, shard, "g"))
        m = meta(out)
        self.assertEqual(m["tokenizer"], "gpt2")
        self.assertEqual(m["vocab_size"], 50257)
        self.assertEqual(m["document_separator"], 50256)
        self.assertEqual(m["tokenizer_identity"],
                         "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930")
        return out

    def test_tinyshakespeare_paragraphs_jsonl(self):
        with open(SHAKESPEARE, encoding="utf-8") as f:
            docs = [d for d in f.read().split("\n\n") if d]
        self.check([write_jsonl(self.path("s.jsonl"), docs)], docs, shard=100000)

    @needs_arrow
    def test_parquet_and_save_to_disk(self):
        import datasets
        docs = make_docs(500, seed=10)
        p = self.path("d.parquet")
        pq.write_table(pa.table({"text": docs}), p, row_group_size=50)
        self.check([p], docs, shard=3000)
        folder = self.path("ds")
        datasets.Dataset.from_dict({"text": docs}).save_to_disk(folder, num_shards=2)
        self.check([folder], docs, shard=3000, extra=["--overwrite"])

    def test_threads_and_default_name(self):
        docs = make_docs(2000, seed=11)
        src = write_jsonl(self.path("d.jsonl"), docs)
        outs = []
        for t in ["1", "2"]:
            out, _ = self.prepare_ok("--input", src, "--shard-tokens", "20000", "--threads", t,
                                     out=self.path("fineweb" + t), tokenizer=rank_file())
            outs.append(list(folder_shards(out).values()))
        self.assertEqual(outs[0], outs[1])
        self.assertEqual(outs[0], list(self.expected(docs, 20000, "x").values()))


if __name__ == "__main__":
    unittest.main()
