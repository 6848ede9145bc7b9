"""`finegpt tokenize` / `detokenize` against tiktoken's gpt2 encoding (src/tokenizer/gpt2.cpp).

Identical ids, every one, on: every document of tiny Shakespeare and the whole file; strings
that stress the pre-tokeniser's rules; thousands of seeded random Unicode strings (all planes,
unassigned code points included, surrogates excluded); every code point in several contexts;
invalid UTF-8 (the documented policy: as tiktoken on bytes.decode('utf-8', errors='replace')).
Also: decode(encode(x)) == x, thread-count independence, the rank file's sources (a path, a
data-gym vocab.bpe, tiktoken's cache, $FINEGPT_GPT2_RANKS), the Unicode tables being current,
and clean errors. Run by ctest with the project's .venv (tiktoken, regex) and FINEGPT_BIN.
"""
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import unittest

import tiktoken.load

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import gpt2_oracle  # noqa: E402
from finegpt_testing import FINEGPT, SHAKESPEARE, CliTest  # noqa: E402

ROOT = os.environ.get("FINEGPT_ROOT",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
RANKS = None
ENC = None


def setUpModule():
    global RANKS, ENC
    if not os.access(FINEGPT, os.X_OK):
        raise RuntimeError("set FINEGPT_BIN to the finegpt binary (ctest does)")
    RANKS = gpt2_oracle.ranks_path(FINEGPT)
    ENC = gpt2_oracle.gpt2_encoding(RANKS)


def finegpt(*args, stdin=None, env=None):
    e = dict(os.environ)
    e.pop("FINEGPT_GPT2_RANKS", None)
    e.update(env or {})
    return subprocess.run([FINEGPT, *map(str, args)], input=stdin, capture_output=True, env=e,
                          timeout=600)


def ids_of(line):
    return [int(x) for x in line.split()]


class Gpt2Case(CliTest):
    def tokenize(self, texts, *args, env=None):
        """finegpt's ids for each text (str or bytes), one process for all of them."""
        folder = tempfile.mkdtemp(dir=self.tmp)
        paths = []
        for i, t in enumerate(texts):
            p = os.path.join(folder, f"{i:06d}.txt")
            with open(p, "wb") as f:
                f.write(t.encode("utf-8") if isinstance(t, str) else t)
            paths.append(p)
        out = []
        for k in range(0, len(paths), 2000):
            p = finegpt("tokenize", *paths[k:k + 2000], *args, env=env)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            lines = p.stdout.decode().split("\n")
            self.assertEqual(lines[-1], "")
            out += [ids_of(l) for l in lines[:-1]]
        self.assertEqual(len(out), len(texts))
        return out

    def assertSameIds(self, got, want, text=""):
        """Like assertEqual on id lists, without difflib (hopeless on millions of ids)."""
        if got == want:
            return
        i = next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        try:
            near = ENC.decode_bytes(want[max(0, i - 5):i + 5])
        except Exception:  # noqa: BLE001 (not GPT-2 ids)
            near = b""
        self.fail(f"ids differ at {i} of {len(want)} (finegpt has {len(got)}) in {text[:100]!r}:\n"
                  f" finegpt  {got[max(0, i - 5):i + 10]}\n tiktoken {want[max(0, i - 5):i + 10]}\n"
                  f" tiktoken's text there: {near!r}")

    def assertParity(self, texts, *args):
        got = self.tokenize(texts, *args)
        for t, ids in zip(texts, got):
            text = t.decode("utf-8", errors="replace") if isinstance(t, bytes) else t
            self.assertSameIds(ids, ENC.encode_ordinary(text), text)
        return got

    def detokenize(self, ids):
        p = finegpt("detokenize", stdin=" ".join(map(str, ids)).encode())
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return p.stdout


def shakespeare():
    with open(SHAKESPEARE, encoding="utf-8") as f:
        return f.read()


ATOMS = [
    " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\t ", "\u00a0", "\u2028", "\u3000",
    "\u200b", "\ufeff", "\x1c", "\x1d", "\x1e", "\x1f", "\x0b", "\x0c", "\x85", "\u2009",
    "'s", "'S", "'ll", "'LL", "'t", "'re", "'Ve", "'d", "'m", "\u2019s", "'", "''", "'x",
    "a", "Z", "word", "Hello", "don", "I", "caf\u00e9", "e\u0301", "\u00fc", "na\u00efve",
    "0", "7", "123", "3.14", "1,000", "\u0661\u0662", "\u00bd", "\u2167", "\u00b2",
    ".", "...", "!?", "--", "$", "%", "(", ")", "\"", "#", "@", "\u2014", "\u00a7",
    "\u4e2d\u6587", "\u65e5\u672c\u8a9e", "\u0645\u0631\u062d\u0628\u0627", "\u0928\u092e\u0938\u094d\u0924\u0947",
    "\u0416\u0436", "\u03a9\u03c9", "\ud55c\uad6d\uc5b4", "\u0e44\u0e17\u0e22",
    "\U0001F600", "\U0001F44D\U0001F3FD", "\U0001F468\u200d\U0001F469\u200d\U0001F467",
    "\u2764\ufe0f", "\U0001F1FA\U0001F1F8", "<|endoftext|>", "<|", "|>", "\ufffd",
]

STRESS = [
    "", " ", "  ", "\n", " \n", "\n ", "   word", "word   ", "word  \n", "  \n  x", "a  b",
    "a \tb", "a\t b", "a\n\nb", "a \n b", "x\r\ny", " \r\n ", "hello world", " leading",
    "trailing ", "it's", "IT'S", "we'll WE'LL", "I've I'VE", "you're YOU'RE", "he'd HE'D",
    "I'm I'M", "don't DON'T", "'s'S's", "''s", "' s", "'sa", "x'll'", "'\u2019s",
    "rock \u2019n\u2019 roll", "12345678901234567890", " 123abc", "abc123", "1.2.3", "3,141",
    "!!!???", " ...", "a---b", "(((x)))", "\t\t\tx", "\n\n\n", "x\n\n\n", " \u00a0x", "\u00a0 x",
    "\u3000x", "x\u3000", "\u200bx\u200b", "\ufeffBOM", "\x1c\x1d\x1e\x1fx", "\u2028line\u2029",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9", "e\u0301e\u0301", "\u0915\u093f", "\u4e2d\u6587 \u5b57",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 text", "\U0001F600\U0001F600 ok", " \U0001F600",
    "\U0001F44D\U0001F3FD\U0001F44D\U0001F3FF", "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466",
    "<|endoftext|>", "a<|endoftext|>b", " <|endoftext|> ", "The end.<|endoftext|>Next",
    "a" * 500, " " * 300, "!" * 400, "\u4e2d" * 300, "ab" * 700 + "!", "9" * 250,
    "x" + " " * 50 + "y", "\t" * 20 + "z", "\U0001F600" * 100,
]


class Parity(Gpt2Case):
    def test_shakespeare_documents_and_whole_file(self):
        text = shakespeare()
        docs = [d for d in text.split("\n\n") if d]
        self.assertGreater(len(docs), 7000)
        self.assertParity(docs + [text])

    def test_stress_strings(self):
        rng = random.Random(3)
        combos = ["".join(rng.choice(ATOMS) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
        self.assertParity(STRESS + ATOMS + combos)

    def test_random_unicode(self):
        rng = random.Random(2024)

        def cp():
            r = rng.random()
            if r < 0.35:  # anywhere, all planes, assigned or not
                c = rng.randint(0, 0x10FFFF)
                return c if not 0xD800 <= c <= 0xDFFF else 0x20
            if r < 0.55:
                return rng.randint(0, 0x2FFF)
            if r < 0.65:
                return rng.randint(0x10000, 0x3FFFF)
            return ord(rng.choice(" \t\n\r'aZs0.,\u00a0\u3000\u2028x"))

        texts = ["".join(chr(cp()) for _ in range(rng.randint(1, 30))) for _ in range(5000)]
        self.assertParity(texts + ["".join(texts)])

    def test_every_code_point_in_context(self):
        # Each code point c among letters, digits, spaces and a contraction. A piece boundary
        # that BPE would merge across shows in the ids ("c's" tells "other" from letters and
        # numbers: the apostrophe joins an "other" run, else "'s" is one token); the class
        # tables themselves are checked exhaustively by UnicodeTables and the C++ tests.
        parts = []
        for c in range(0x110000):
            if 0xD800 <= c <= 0xDFFF:
                continue
            ch = chr(c)
            parts.append(f"x{ch}1{ch} {ch}'s  {ch}\n")
        text = "".join(parts)
        got = self.tokenize([text], "--threads", "2")[0]
        self.assertSameIds(got, ENC.encode_ordinary(text))

    def test_multilingual(self):
        text = gpt2_oracle.multilingual_text(300_000, seed=5)
        self.assertParity([text, text[:1000], text[1000:5000]])

    def test_literal_endoftext_is_ordinary_text(self):
        (ids,) = self.assertParity(["<|endoftext|>"])
        self.assertNotIn(50256, ids)
        self.assertGreater(len(ids), 1)


class InvalidUtf8(Gpt2Case):
    CASES = [b"\x80", b"a\xffb", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xe2\x82 x", b"\xed\xa0\x80",
             b"\xf0\x80\x80\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xf0\x9f\x98", b"x \xf0\x9f\x98 y",
             b"\xfe\xff", b"caf\xe9", b"it\x92s", b"  \x80  ", b"'\x80s", b"\xef\xbb\xbf\xff"]

    def test_replaced_like_python(self):
        rng = random.Random(9)
        noise = [bytes(rng.randrange(256) for _ in range(rng.randint(1, 24))) for _ in range(1500)]
        mixed = [rng.choice(ATOMS).encode() + bytes([rng.randrange(0x80, 0x100)]) +
                 rng.choice(ATOMS).encode() for _ in range(500)]
        self.assertParity(self.CASES + noise + mixed)

    def test_decode_gives_the_replaced_text(self):
        data = b"".join(self.CASES)
        (ids,) = self.tokenize([data])
        self.assertEqual(self.detokenize(ids), data.decode("utf-8", errors="replace").encode())


class RoundTrip(Gpt2Case):
    def test_detokenize_inverts_tokenize(self):
        rng = random.Random(11)
        rand = "".join(chr(c) for c in (rng.randint(0, 0x10FFFF) for _ in range(20000))
                       if not 0xD800 <= c <= 0xDFFF)
        texts = [shakespeare(), "".join(STRESS), rand, gpt2_oracle.multilingual_text(50_000, 1)]
        for text, ids in zip(texts, self.tokenize(texts)):
            self.assertTrue(self.detokenize(ids) == text.encode("utf-8"), text[:100])
        for s in STRESS[:30]:
            (ids,) = self.tokenize([s])
            self.assertEqual(self.detokenize(ids), s.encode("utf-8"), repr(s))

    def test_detokenize_file_and_endoftext(self):
        path = os.path.join(self.tmp, "ids.txt")
        with open(path, "w") as f:
            f.write("15496\n 995\t50256  \n")
        p = finegpt("detokenize", path)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(p.stdout, b"Hello world<|endoftext|>")
        p = finegpt("detokenize", stdin=b"")
        self.assertEqual((p.returncode, p.stdout), (0, b""))


class Threads(Gpt2Case):
    def test_ids_do_not_depend_on_threads(self):
        text = (shakespeare() * 2 + gpt2_oracle.multilingual_text(600_000, seed=2) +
                "\u4e2d" * 400_000 + shakespeare())
        data = text.encode() + b"\xff tail"
        runs = [self.tokenize([data], "--threads", n)[0] for n in (1, 2, 3, 8)]
        for r in runs[1:]:
            self.assertTrue(r == runs[0], "ids depend on the thread count")
        self.assertSameIds(runs[0], ENC.encode_ordinary(data.decode("utf-8", errors="replace")))


def data_gym_files(folder):
    """GPT-2's vocab.bpe and encoder.json rebuilt from the rank file (tiktoken's inverse)."""
    ranks = tiktoken.load.load_tiktoken_bpe(RANKS)
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    byte_to_char = {b: chr(b) for b in printable}
    n = 0
    for b in range(256):
        if b not in byte_to_char:
            byte_to_char[b] = chr(256 + n)
            n += 1
    dg = lambda bs: "".join(byte_to_char[b] for b in bs)  # noqa: E731
    lines = ["#version: 0.2"]
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1])[256:]:
        for k in range(1, len(token)):
            if ranks.get(token[:k], 1 << 30) < rank and ranks.get(token[k:], 1 << 30) < rank:
                lines.append(f"{dg(token[:k])} {dg(token[k:])}")
                break
        else:
            raise AssertionError(f"no split for {token!r}")
    vocab = os.path.join(folder, "vocab.bpe")
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    encoder = os.path.join(folder, "encoder.json")
    with open(encoder, "w", encoding="utf-8") as f:
        json.dump({dg(t): r for t, r in ranks.items()} | {"<|endoftext|>": 50256}, f)
    return vocab, encoder, ranks


class RankSources(Gpt2Case):
    TEXT = "Hello, world! It's a test of\u00a0rank files \u4e2d\u6587 123.\n"

    def want(self):
        return ENC.encode_ordinary(self.TEXT)

    def test_explicit_path_and_env(self):
        self.assertEqual(self.tokenize([self.TEXT], "--tokenizer", RANKS)[0], self.want())
        self.assertEqual(self.tokenize([self.TEXT], env={"FINEGPT_GPT2_RANKS": RANKS})[0], self.want())
        p = finegpt("tokenize", RANKS, env={"FINEGPT_GPT2_RANKS": "/nonexistent/ranks"})
        self.assertCleanError(self.text(p), "/nonexistent/ranks")

    def test_data_gym_vocab_bpe(self):
        vocab, encoder, ranks = data_gym_files(self.tmp)
        # tiktoken itself derives the same ranks from these files ...
        self.assertTrue(tiktoken.load.data_gym_to_mergeable_bpe_ranks(vocab, encoder) == ranks)
        # ... and so does finegpt, from vocab.bpe alone.
        self.assertEqual(self.tokenize([self.TEXT], "--tokenizer", vocab)[0], self.want())

    def test_tiktoken_cache(self):
        cache = os.path.join(self.tmp, "cache")
        os.makedirs(cache)
        r50k = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"
        vocab_url = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe"
        vocab, _, _ = data_gym_files(self.tmp)
        with open(vocab, "rb") as f:
            vocab_bytes = f.read()
        cached_vocab = os.path.join(cache, hashlib.sha1(vocab_url.encode()).hexdigest())
        with open(cached_vocab, "wb") as f:
            f.write(vocab_bytes)
        env = {"TIKTOKEN_CACHE_DIR": cache}
        self.assertEqual(self.tokenize([self.TEXT], env=env)[0], self.want())
        # r50k_base.tiktoken is looked for first; a broken one there is reported by name.
        cached_r50k = os.path.join(cache, hashlib.sha1(r50k.encode()).hexdigest())
        with open(cached_r50k, "w") as f:
            f.write("not base64!! 0\n")
        p = finegpt("tokenize", RANKS, env=env)
        self.assertCleanError(self.text(p), cached_r50k)
        # DATA_GYM_CACHE_DIR is the fallback name; an empty TIKTOKEN_CACHE_DIR disables the cache.
        os.remove(cached_r50k)
        self.assertEqual(self.tokenize([self.TEXT], env={"DATA_GYM_CACHE_DIR": cache})[0], self.want())
        os.remove(cached_vocab)
        with open(cached_vocab, "w") as f:
            f.write("broken")
        self.assertEqual(self.tokenize([self.TEXT], env={"TIKTOKEN_CACHE_DIR": ""})[0], self.want())

    def test_none_found(self):
        # A copy of the binary without assets/ beside it, and an empty tiktoken cache.
        import shutil
        lone = os.path.join(self.tmp, "bin", "finegpt")
        os.makedirs(os.path.dirname(lone))
        shutil.copy(FINEGPT, lone)
        cache = os.path.join(self.tmp, "empty-cache")
        e = dict(os.environ, TIKTOKEN_CACHE_DIR=cache)
        e.pop("FINEGPT_GPT2_RANKS", None)
        p = subprocess.run([lone, "tokenize", RANKS], capture_output=True, text=True, env=e)
        line = self.assertCleanError(p, "no GPT-2 rank file found", cache,
                                     os.path.join(self.tmp, "bin", "assets", "gpt2.tiktoken"))
        self.assertIn("FINEGPT_GPT2_RANKS", line)

    def test_wrong_ranks(self):
        bad = os.path.join(self.tmp, "other.tiktoken")
        with open(RANKS, "rb") as f:
            lines = f.read().splitlines(keepends=True)
        with open(bad, "wb") as f:
            f.writelines(lines[:-1])
        p = finegpt("tokenize", RANKS, "--tokenizer", bad)
        self.assertCleanError(self.text(p), "other.tiktoken", "not GPT-2's ranks")

    @staticmethod
    def text(p):
        return subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(errors="replace"),
                                           p.stderr.decode(errors="replace"))


class Cli(Gpt2Case):
    def test_help(self):
        for cmd in ("tokenize", "detokenize"):
            p = finegpt(cmd, "--help")
            self.assertEqual(p.returncode, 0)
            self.assertIn(f"usage: finegpt {cmd}", p.stdout.decode())

    def test_errors(self):
        t = RankSources.text
        self.assertCleanError(t(finegpt("tokenize")), "FILE")
        self.assertCleanError(t(finegpt("tokenize", "/nonexistent.txt")), "/nonexistent.txt")
        self.assertCleanError(t(finegpt("tokenize", SHAKESPEARE, "--threads", "-1")), "--threads")
        self.assertCleanError(t(finegpt("tokenize", SHAKESPEARE, "--tokenizer", "char")), "char:")
        self.assertCleanError(t(finegpt("detokenize", stdin=b"15496 abc")), "'abc'", "item 2")
        self.assertCleanError(t(finegpt("detokenize", stdin=b"50257")), "50257", "out of range")
        self.assertCleanError(t(finegpt("detokenize", stdin=b"-3")), "-3")

    def test_char_tokenizer(self):
        data = self.char_data()
        meta = os.path.join(data, "meta.json")
        with open(meta, encoding="utf-8") as f:
            itos = json.load(f)["itos"]
        text = shakespeare()[:5000]
        (ids,) = self.tokenize([text], "--tokenizer", f"char:{meta}")
        self.assertSameIds(ids, [itos.index(c) for c in text])
        p = finegpt("detokenize", "--tokenizer", f"char:{meta}", stdin=" ".join(map(str, ids)).encode())
        self.assertEqual(p.stdout.decode(), text)
        p = finegpt("tokenize", "--tokenizer", f"char:{meta}", self.write_config("caf\u00e9", "x.txt"))
        self.assertCleanError(RankSources.text(p), "not in the vocabulary")


class UnicodeTables(unittest.TestCase):
    def test_generated_tables_match_tiktoken(self):
        p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_unicode_tables.py"),
                            "--check"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main()
