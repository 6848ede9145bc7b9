"""tiktoken's gpt2 encoding loaded offline, and generated texts, for the GPT-2 tokenizer's tests
(test_gpt2.py) and benchmark (bench/tokenizer_bench.py). Not a test module itself.

tiktoken.get_encoding('gpt2') would download GPT-2's vocab.bpe; the same ranks are in the
openai-whisper package's gpt2.tiktoken (sha256 306cd27f...), which CMake copies beside the
finegpt binary. The pattern is tiktoken's own (tiktoken_ext.openai_public.r50k_pat_str).
"""
import importlib.util
import os
import random

import tiktoken
import tiktoken.load
from tiktoken_ext import openai_public

GPT2_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
# REFERENCE.md section 3; a change in tiktoken shows up here first.
PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


def ranks_path(finegpt_bin=None):
    """gpt2.tiktoken beside the finegpt binary, else the one in the whisper package."""
    if finegpt_bin:
        p = os.path.join(os.path.dirname(os.path.abspath(finegpt_bin)), "assets", "gpt2.tiktoken")
        if os.path.exists(p):
            return p
    spec = importlib.util.find_spec("whisper")
    if spec and spec.submodule_search_locations:
        p = os.path.join(spec.submodule_search_locations[0], "assets", "gpt2.tiktoken")
        if os.path.exists(p):
            return p
    raise RuntimeError("no gpt2.tiktoken: run scripts/setup.sh")


def gpt2_encoding(path):
    assert openai_public.r50k_pat_str == PATTERN, "tiktoken's gpt2 pattern changed"
    ranks = tiktoken.load.load_tiktoken_bpe(path, expected_hash=GPT2_SHA256)
    return tiktoken.Encoding(name="gpt2-offline", pat_str=openai_public.r50k_pat_str,
                             mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})


# Scripts as (first, last code point, words separated by spaces?).
SCRIPTS = [
    (0x61, 0x7A, True), (0xC0, 0xFF, True), (0x100, 0x17F, True),  # Latin, accented
    (0x391, 0x3C9, True), (0x410, 0x44F, True),  # Greek, Cyrillic
    (0x5D0, 0x5EA, True), (0x621, 0x64A, True),  # Hebrew, Arabic
    (0x905, 0x939, True), (0x93E, 0x94D, True),  # Devanagari letters and vowel signs (marks)
    (0xE01, 0xE30, False),  # Thai (no spaces)
    (0x3041, 0x3096, False), (0x30A1, 0x30FA, False), (0x4E00, 0x9FFF, False),  # kana, CJK
    (0xAC00, 0xD7A3, True),  # Hangul
    (0x1F600, 0x1F64F, True), (0x1F300, 0x1F5FF, True),  # emoji
    (0x0660, 0x0669, True), (0x0966, 0x096F, True), (0x30, 0x39, True),  # digits
]
PUNCT = [".", ",", "!", "?", ";", ":", "\u3002", "\u3001", "\u060c", "\u2014", "\u2026", "\"",
         "'", "(", ")", "\u00bf", "\u00a1", "-", "\u00ab", "\u00bb"]
SEPARATORS = [" ", " ", " ", " ", "\n", "  ", "\t", "\n\n", "\u00a0", "\u3000", " \n"]


def multilingual_text(n_chars, seed=0):
    """Words from many scripts with punctuation and mixed white space, about n_chars long."""
    rng = random.Random(seed)
    out, size = [], 0
    while size < n_chars:
        first, last, spaced = SCRIPTS[rng.randrange(len(SCRIPTS))]
        run = rng.randint(3, 40)
        for _ in range(run):
            word = "".join(chr(rng.randint(first, last)) for _ in range(rng.randint(1, 9)))
            if rng.random() < 0.15:
                word += rng.choice(PUNCT)
            sep = rng.choice(SEPARATORS) if spaced or rng.random() < 0.1 else ""
            out.append(word + sep)
            size += len(word) + len(sep)
    return "".join(out)[:n_chars]
