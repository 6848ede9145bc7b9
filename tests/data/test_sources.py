"""The text sources of `finegpt prepare` (src/data/sources.h): every input kind, made at test
time by its real writer (pyarrow, datasets, Python's json / gzip modules, zstd), must yield the
same documents in the same order; bad inputs fail with one line naming the file.

The documents finegpt read are recovered from its shards with the hidden `--tokenizer
test-bytes` (token = byte, separator 256), so they are compared byte for byte.
"""
import gzip
import json
import os
import shutil
import subprocess
import unittest

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq

from prepare_testing import (PrepareCase, as_bytes, meta, needs_arrow, prepare,  # noqa: F401
                             prepared_docs, setUpModule)

try:
    import zstandard
except ImportError:
    zstandard = None


def sample_docs(n=200):
    """Documents with what real text has: repeats (dictionary pages), Unicode, newlines, long
    and short ones."""
    words = ["the", "caf\u00e9", "\u00fcber", "\u65e5\u672c\u8a9e", "\U0001F600", "x" * 50, "\n",
             "<|endoftext|>", "tab\there"]
    docs = []
    for i in range(n):
        k = (i * 7) % 23 + 1
        docs.append(" ".join(words[(i + j) % len(words)] for j in range(k)) + f" #{i}")
        if i % 10 == 0:
            docs.append("a repeated document")
    docs.append("y" * 20000)  # spans several data pages
    return docs


def write_zst(path, data):
    """.zst via the zstandard module, else the zstd command; False if neither exists."""
    if zstandard is not None:
        with open(path, "wb") as f:
            f.write(zstandard.ZstdCompressor().compress(data))
        return True
    if shutil.which("zstd"):
        raw = path + ".raw"
        with open(raw, "wb") as f:
            f.write(data)
        subprocess.run(["zstd", "-q", "-f", raw, "-o", path], check=True)
        os.remove(raw)
        return True
    return False


def jsonl_bytes(docs, field="text", ensure_ascii=True):
    return "".join(json.dumps({"id": i, field: d}, ensure_ascii=ensure_ascii) + "\n"
                   for i, d in enumerate(docs)).encode("utf-8")


@needs_arrow
class Parquet(PrepareCase):
    def test_compressions_and_page_kinds(self):
        docs = sample_docs()
        for comp in ["snappy", "zstd", "gzip", "none"]:
            for dictionary in [True, False]:
                with self.subTest(compression=comp, dictionary=dictionary):
                    p = self.path(f"{comp}_{dictionary}.parquet")
                    # A small dictionary page limit: dictionary pages, then plain pages once the
                    # dictionary is full (as FineWeb's files have them).
                    pq.write_table(pa.table({"id": list(range(len(docs))), "text": docs}), p,
                                   compression=comp, use_dictionary=dictionary, row_group_size=60,
                                   data_page_size=512, dictionary_pagesize_limit=1024)
                    md = pq.ParquetFile(p).metadata
                    self.assertGreater(md.num_row_groups, 3)
                    encodings = set(md.row_group(0).column(1).encodings)
                    self.assertEqual("RLE_DICTIONARY" in encodings, dictionary, encodings)
                    self.assertIn("PLAIN", encodings)
                    got = self.docs_of("--input", p, out=self.path(f"o_{comp}_{dictionary}"))
                    self.assertEqual(got, as_bytes(docs))

    def test_large_string_nulls_empties_many_row_groups(self):
        docs = [f"doc {i} " + "\u00e9" * (i % 5) if i % 9 else None for i in range(500)]
        docs[3] = ""
        docs[4] = ""
        table = pa.table({"text": pa.array(docs, type=pa.large_string())})
        p = self.path("large.parquet")
        pq.write_table(table, p, row_group_size=3)
        self.assertEqual(pq.ParquetFile(p).schema_arrow.field("text").type, pa.large_string())
        out, _ = self.prepare_ok("--input", p)
        self.assertEqual(prepared_docs(out), as_bytes([d for d in docs if d]))
        m = meta(out)
        self.assertEqual(m["skipped"], {"empty": 2, "not_text": docs.count(None)})
        self.assertEqual(m["documents"], len([d for d in docs if d]))

    def test_dictionary_typed_column_and_text_column_option(self):
        docs = ["red", "green", "red", "blue", "green"] * 30
        arr = pa.array(docs).dictionary_encode()
        p = self.path("dict.parquet")
        pq.write_table(pa.table({"content": arr, "n": list(range(len(docs)))}), p,
                       row_group_size=20)
        got = self.docs_of("--input", p, "--text-column", "content")
        self.assertEqual(got, as_bytes(docs))

    def test_folder_sorted_by_name_recursively(self):
        parts = {"b.parquet": ["b1", "b2"], "a.parquet": ["a1"], "sub/c.parquet": ["c1", "c2"],
                 "sub/0.parquet": ["zero"]}
        for name, docs in parts.items():
            p = self.path("data", name)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            pq.write_table(pa.table({"text": docs}), p)
        self.write("data/README.md", "# not a document\n")
        self.write("data/notes.csv", "a,b\n")
        self.write("data/.cache/x.parquet", "hidden")
        got = self.docs_of("--input", self.path("data"))
        self.assertEqual(got, as_bytes(["a1", "b1", "b2", "zero", "c1", "c2"]))


@needs_arrow
class ArrowIpc(PrepareCase):
    def test_save_to_disk_in_state_json_order(self):
        import datasets
        docs = sample_docs(300)
        ds = datasets.Dataset.from_dict({"text": docs, "id": list(range(len(docs)))})
        folder = self.path("ds")
        ds.save_to_disk(folder, num_shards=3)
        with open(os.path.join(folder, "state.json")) as f:
            files = [e["filename"] for e in json.load(f)["_data_files"]]
        self.assertEqual(len(files), 3)
        self.assertEqual(self.docs_of("--input", folder), as_bytes(docs))

    def test_dataset_dict_takes_train_or_the_split_given(self):
        import datasets
        dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["t1", "t2"]}),
                                   "test": datasets.Dataset.from_dict({"text": ["e1"]})})
        folder = self.path("dd")
        dd.save_to_disk(folder)
        self.assertEqual(self.docs_of("--input", folder, out=self.path("o1")), [b"t1", b"t2"])
        self.assertEqual(self.docs_of("--input", os.path.join(folder, "test"),
                                      out=self.path("o2")), [b"e1"])
        only_test = self.path("dd2")
        datasets.DatasetDict({"test": datasets.Dataset.from_dict({"text": ["e"]})}).save_to_disk(
            only_test)
        out = self.path("o3")
        r = prepare("--tokenizer", "test-bytes", "--input", only_test, "--out", out)
        self.assertError(r, only_test, "without a 'train' split", "test", out=out)

    def test_datasets_cache_folder(self):
        import datasets
        train = self.write("train.jsonl", jsonl_bytes(["one", "two", "three"]))
        test = self.write("test.jsonl", jsonl_bytes(["held out"]))
        cache = self.path("cache")
        datasets.load_dataset("json", data_files={"train": train, "test": test}, cache_dir=cache)
        arrows = []
        for root, _, files in os.walk(cache):
            arrows += [os.path.join(root, f) for f in files if f.endswith(".arrow")]
        self.assertEqual(len(arrows), 2, arrows)
        folder = os.path.dirname(arrows[0])
        self.assertEqual(self.docs_of("--input", folder), [b"one", b"two", b"three"])

    def test_ipc_file_and_stream_types(self):
        docs = sample_docs(50)
        for kind, typ in [("file", pa.string()), ("stream", pa.large_string()),
                          ("stream", pa.string_view())]:
            with self.subTest(kind=kind, type=str(typ)):
                p = self.path(f"{kind}_{typ}.arrow")
                table = pa.table({"text": pa.array(docs, type=typ)})
                with pa.OSFile(p, "wb") as sink:
                    new = pa.ipc.new_file if kind == "file" else pa.ipc.new_stream
                    with new(sink, table.schema) as w:
                        for b in table.to_batches(max_chunksize=7):
                            w.write_batch(b)
                got = self.docs_of("--input", p, out=self.path(f"o_{kind}_{typ}"))
                self.assertEqual(got, as_bytes(docs))


class Jsonl(PrepareCase):
    def test_plain_gzip_zstd(self):
        docs = sample_docs(100)
        data = jsonl_bytes(docs)
        plain = self.write("d.jsonl", data.replace(b"\n", b"\n\n", 3))  # blank lines are skipped
        gz = self.path("d.jsonl.gz")
        half = len(data) // 2
        with open(gz, "wb") as f:  # two gzip members, as `cat a.gz b.gz` makes
            f.write(gzip.compress(data[:half]) + gzip.compress(data[half:]))
        self.assertEqual(self.docs_of("--input", plain, out=self.path("o1")), as_bytes(docs))
        self.assertEqual(self.docs_of("--input", gz, out=self.path("o2")), as_bytes(docs))
        zst = self.path("d.jsonl.zst")
        if not write_zst(zst, jsonl_bytes(docs, ensure_ascii=False)):
            self.skipTest("neither the zstandard module nor the zstd command is available")
        self.assertEqual(self.docs_of("--input", zst, out=self.path("o3")), as_bytes(docs))

    def test_text_field_nulls_and_crlf(self):
        lines = [{"content": "first"}, {"content": None}, {"content": 42}, {"content": ""},
                 {"content": "\u00e9t\u00e9"}]
        p = self.write("d.jsonl", "\r\n".join(json.dumps(l) for l in lines))
        out, _ = self.prepare_ok("--input", p, "--text-field", "content")
        self.assertEqual(prepared_docs(out), as_bytes(["first", "\u00e9t\u00e9"]))
        self.assertEqual(meta(out)["skipped"], {"empty": 1, "not_text": 2})

    def test_invalid_utf8_is_counted_not_fatal(self):
        p = self.write("d.jsonl", b'{"text": "caf\xe9"}\n{"text": "fine"}\n'
                                  b'{"text": "lone \\ud800 surrogate"}\n')
        out, _ = self.prepare_ok("--input", p)
        self.assertEqual(prepared_docs(out),
                         as_bytes(["caf\ufffd", "fine", "lone \ufffd surrogate"]))
        self.assertEqual(meta(out)["invalid_utf8"], 2)

    def test_bad_lines(self):
        p = self.write("bad.jsonl", '{"text": "ok"}\n{"text": nope}\n')
        out = self.path("o")
        self.assertError(prepare("--input", p, "--out", out, "--tokenizer", "test-bytes"),
                         f"{p}:2: not JSON", out=out)
        q = self.write("nofield.jsonl", '{"body": "x", "id": 1}\n')
        self.assertError(prepare("--input", q, "--out", out, "--tokenizer", "test-bytes"),
                         f"{q}:1:", 'no field "text"', "body, id", "--text-field", out=out)
        a = self.write("array.jsonl", '["x"]\n')
        self.assertError(prepare("--input", a, "--out", out, "--tokenizer", "test-bytes"),
                         f"{a}:1:", "JSON object", out=out)
        t = self.write("trunc.jsonl.gz", gzip.compress(jsonl_bytes(["a" * 1000] * 50))[:300])
        self.assertError(prepare("--input", t, "--out", out, "--tokenizer", "test-bytes"),
                         t, "truncated gzip", out=out)


class Text(PrepareCase):
    def test_one_document_per_file_in_the_order_given(self):
        a = self.write("a.txt", "alpha\r\n")
        b = self.write("b.txt", "beta\n\nmore")
        self.assertEqual(self.docs_of("--input", b, a, out=self.path("o1")),
                         [b"beta\n\nmore", b"alpha\r\n"])
        self.assertEqual(self.docs_of("--input", self.tmp, out=self.path("o2")),
                         [b"alpha\r\n", b"beta\n\nmore"])

    def test_doc_separator(self):
        p = self.write("s.txt", "one\n\ntwo\n\n\n\nthree\n\n")
        out, _ = self.prepare_ok("--input", p, "--doc-separator", "\\n\\n")
        self.assertEqual(prepared_docs(out), [b"one", b"two", b"three"])
        self.assertEqual(meta(out)["skipped"]["empty"], 1)
        q = self.write("e.txt", "a<|endoftext|>b<|endoftext|>c")
        self.assertEqual(self.docs_of("--input", q, "--doc-separator", "<|endoftext|>",
                                      out=self.path("o2")), [b"a", b"b", b"c"])
        g = self.path("g.txt.gz")
        with open(g, "wb") as f:
            f.write(gzip.compress(b"x;y;" * 100000))
        self.assertEqual(self.docs_of("--input", g, "--doc-separator", ";", out=self.path("o3")),
                         [b"x", b"y"] * 100000)

    @needs_arrow
    def test_mixed_inputs_keep_their_order(self):
        pq.write_table(pa.table({"text": ["p1", "p2"]}), self.path("m.parquet"))
        j = self.write("m.jsonl", jsonl_bytes(["j1"]))
        t = self.write("m.txt", "t1")
        got = self.docs_of("--input", j, self.path("m.parquet"), t)
        self.assertEqual(got, [b"j1", b"p1", b"p2", b"t1"])


class BadInput(PrepareCase):
    def fails(self, inputs, *needles, extra=()):
        out = self.path("out")
        r = prepare("--tokenizer", "test-bytes", "--input", *inputs, "--out", out, *extra)
        line = self.assertError(r, *needles, out=out)
        self.assertFalse(os.path.exists(out) and os.listdir(out), "files written")
        return line

    def test_not_parquet(self):
        p = self.write("fake.parquet", '{"text": "I am JSON"}\n')
        self.fails([p], p, "not a Parquet file", "JSON text")
        q = self.write("fake2.parquet", b"\x00\x01\x02\x03binary")
        self.fails([q], q, "not a Parquet file", "binary data")
        a = self.write("fake.arrow", "plain words\n")
        self.fails([a], a, "not an Arrow IPC", "text")

    def test_truncated_parquet(self):
        p = self.path("t.parquet")
        pq.write_table(pa.table({"text": sample_docs()}), p, row_group_size=10)
        with open(p, "rb") as f:
            data = f.read()
        self.write("t.parquet", data[:len(data) // 2])
        self.fails([p], p, "truncated Parquet file")

    @needs_arrow
    def test_truncated_arrow_stream(self):
        import datasets
        folder = self.path("ds")
        datasets.Dataset.from_dict({"text": sample_docs()}).save_to_disk(folder)
        f = [os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".arrow")][0]
        with open(f, "rb") as fh:
            data = fh.read()
        with open(f, "wb") as fh:
            fh.write(data[:len(data) // 2])
        self.fails([folder], f, "truncated Arrow IPC stream")
        # Cut inside a message but with an end-of-stream marker appended: Arrow finds it.
        with open(f, "wb") as fh:
            fh.write(data[:len(data) // 2] + b"\xff\xff\xff\xff\x00\x00\x00\x00")
        self.fails([folder], f, "Arrow IPC stream")

    @needs_arrow
    def test_arrow_offsets_outside_the_data(self):
        # Arrow takes an IPC file's offsets as stored; each batch's column is validated before
        # its rows are read (a damaged stream used to make prepare read outside the buffers).
        def stream(name, offsets, data):
            offs = pa.py_buffer(b"".join(o.to_bytes(4, "little", signed=True) for o in offsets))
            col = pa.Array.from_buffers(pa.string(), len(offsets) - 1,
                                        [None, offs, pa.py_buffer(data)])
            p = self.path(name)
            with pa.OSFile(p, "wb") as f, pa.ipc.new_stream(f, pa.schema([("text", col.type)])) as w:
                w.write_batch(pa.record_batch([col], names=["text"]))
            return p
        p = stream("bad.arrow", [0, 3, 1 << 30, 6], b"abcdef")
        self.fails([p], p, "corrupt text column", "out of bounds")
        # Validated as bytes: a string column whose text is not UTF-8 is still read.
        q = stream("latin1.arrow", [0, 5, 6], b"caf\xe9 x")
        self.assertEqual(self.docs_of("--input", q), [b"caf\xe9 ", b"x"])

    @needs_arrow
    def test_missing_text_column_lists_columns(self):
        p = self.path("c.parquet")
        pq.write_table(pa.table({"id": [1], "content": ["x"], "url": ["u"]}), p)
        self.fails([p], p, "no column 'text'", "id, content, url", "--text-column")
        self.fails([p], "column 'id'", "int64", "not text", extra=["--text-column", "id"])

    def test_zero_byte_files(self):
        for name in ["z.parquet", "z.arrow", "z.jsonl", "z.txt"]:
            with self.subTest(name=name):
                p = self.write(name, b"")
                self.fails([p], p, "empty file (0 bytes)")

    def test_non_utf8_and_empty_documents_are_counted(self):
        p = self.write("latin1.txt", b"caf\xe9 au lait\n")
        q = self.write("sep.txt", "a||||b||")
        out, r = self.prepare_ok("--input", p, q, "--doc-separator", "||")
        self.assertEqual(prepared_docs(out), [b"caf\xe9 au lait\n", b"a", b"b"])
        m = meta(out)
        self.assertEqual(m["invalid_utf8"], 1)
        self.assertEqual(m["skipped"]["empty"], 1)
        self.assertIn("1 empty", r.stdout)
        self.assertIn("1 documents with invalid UTF-8", r.stdout)

    def test_missing_input_and_empty_folder(self):
        missing = self.path("nope.parquet")
        self.fails([missing], missing, "no such file")
        os.makedirs(self.path("empty_dir"))
        self.write("empty_dir/notes.csv", "x")
        self.fails([self.path("empty_dir")], "empty_dir", "no Parquet, Arrow, JSONL or text files")

    @needs_arrow
    def test_no_text_at_all(self):
        p = self.path("nulls.parquet")
        pq.write_table(pa.table({"text": pa.array([None, ""], type=pa.string())}), p)
        self.fails([p], "no documents with text", "1 empty", "1 not text")


if __name__ == "__main__":
    unittest.main()
