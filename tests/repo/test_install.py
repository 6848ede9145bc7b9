"""A versioned, installable program: `finegpt --version` names the version in CMakeLists.txt,
the git commit of the checkout it was built from and the build's options; `cmake --install
build --prefix DIR` gives DIR/bin/finegpt and its GPT-2 rank file, so that the installed binary
tokenizes from any working directory with nothing else pointing at the rank file.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "data"))
from finegpt_testing import FINEGPT, ROOT, CliTest, run  # noqa: E402
from prepare_testing import tiktoken_gpt2  # noqa: E402

BUILD = os.path.dirname(os.path.abspath(FINEGPT))


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(finegpt VERSION ([0-9.]+)", f.read()).group(1)


class Version(CliTest):
    def test_version(self):
        for flag in ("--version", "version"):
            p = run(flag, check=True)
            lines = p.stdout.splitlines()
            self.assertEqual(lines[0], f"finegpt {project_version()}")
            self.assertTrue(lines[1].startswith("commit:  "), lines)
            self.assertRegex(lines[2], r"^build:   (Release|Debug|RelWithDebInfo|MinSizeRel),.*BLAS")
        commit = lines[1].split()[1]
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True)
        if head.returncode == 0:  # a git checkout: the commit it was built from
            self.assertEqual(commit.removesuffix("-dirty"), head.stdout.strip())
        self.assertIn(f"finegpt {project_version()}", run("info", check=True).stdout)
        self.assertCleanError(run("--version", "--short"), "--version", "--short")


class Install(CliTest):
    def test_installed_binary_tokenizes_from_anywhere(self):
        prefix = os.path.join(self.tmp, "prefix")
        p = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], capture_output=True,
                           text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        binary = os.path.join(prefix, "bin", "finegpt")
        self.assertTrue(os.path.isfile(os.path.join(prefix, "share", "finegpt", "gpt2.tiktoken")))
        elsewhere = os.path.join(self.tmp, "elsewhere")
        os.makedirs(elsewhere)
        text = os.path.join(elsewhere, "notes.txt")
        with open(text, "w", encoding="utf-8") as f:
            f.write("Hello, world! The installed finegpt finds its rank file.\n caf\u00e9 \U0001F680")
        # Nothing points at a rank file: no FINEGPT_GPT2_RANKS, tiktoken's cache disabled.
        env = {k: v for k, v in os.environ.items() if k != "FINEGPT_GPT2_RANKS"}
        env["TIKTOKEN_CACHE_DIR"] = ""
        p = subprocess.run([binary, "tokenize", "notes.txt"], cwd=elsewhere, env=env,
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(text, encoding="utf-8") as f:
            self.assertEqual([int(t) for t in p.stdout.split()],
                             tiktoken_gpt2().encode_ordinary(f.read()))
        p = subprocess.run([binary, "--version"], cwd=elsewhere, env=env, capture_output=True,
                           text=True)
        self.assertEqual(p.stdout.splitlines()[0], f"finegpt {project_version()}")
        # Without the installed rank file the binary says where it looked.
        os.remove(os.path.join(prefix, "share", "finegpt", "gpt2.tiktoken"))
        p = subprocess.run([binary, "tokenize", "notes.txt"], cwd=elsewhere, env=env,
                           capture_output=True, text=True)
        self.assertCleanError(p, "no GPT-2 rank file", os.path.join("share", "finegpt"))
        shutil.rmtree(prefix)


if __name__ == "__main__":
    unittest.main()
