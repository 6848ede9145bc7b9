"""The repository stands alone: no tracked file but the documentation refers to a folder beside
the clone (the development machines' shared folder), so a fresh clone in an empty folder has
everything its tests, benchmarks, scripts, configs and README examples read.

The tracked files are `git ls-files` when this is a git checkout, else every file under the
root except what git ignores here (build*/, .venv, third_party/, data/, out*/). Documentation
(*.md other than README.md, whose commands users copy) may mention the shared folder when it
records where a measurement was made.
"""
import os
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Spelled in pieces so that this file does not match itself.
FORBIDDEN = [".." + "/shared", "/work" + "/shared", "FINEGPT" + "_SHARED"]
SKIP_DIRS = {".git", ".venv", "third_party", "data", "__pycache__", ".cache"}


def tracked_files(root):
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z"], capture_output=True,
                             check=True).stdout
        return [os.fsdecode(p) for p in out.split(b"\0") if p]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, dirs, names in os.walk(root):
            dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not x.startswith(("build", "out"))]
            files += [os.path.relpath(os.path.join(d, n), root) for n in names]
        return files


def offenders(root, files):
    """(file, line number, line) of every reference to the shared folder outside documentation."""
    found = []
    for rel in files:
        if rel.endswith(".md") and os.path.basename(rel) != "README.md":
            continue
        try:
            with open(os.path.join(root, rel), "rb") as f:
                data = f.read()
        except OSError:
            continue
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if any(s in line for s in FORBIDDEN):
                found.append((rel, n, line.strip()))
    return found


class SelfContained(unittest.TestCase):
    def test_no_tracked_file_reads_outside_the_repository(self):
        files = tracked_files(ROOT)
        self.assertIn("corpora/tinyshakespeare.txt", files)
        bad = offenders(ROOT, files)
        self.assertEqual(bad, [], "files refer to the folder beside the clone:\n" +
                         "\n".join(f"  {f}:{n}: {l}" for f, n, l in bad))

    def test_the_check_finds_a_reference(self):
        # The scan itself: a planted reference in code and in README.md is found; one in
        # other documentation is not.
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in [("a.py", "x = 1\nDATA = '" + FORBIDDEN[0] + "/data/t.txt'\n"),
                               ("README.md", "run `prepare --input " + FORBIDDEN[1] + "/x`\n"),
                               ("NOTES.md", "measured with " + FORBIDDEN[0] + "\n"),
                               ("b.cmake", "ENV " + FORBIDDEN[2] + "=1\n")]:
                with open(os.path.join(tmp, name), "w") as f:
                    f.write(text)
            got = sorted((f, n) for f, n, _ in offenders(tmp, tracked_files(tmp)))
            self.assertEqual(got, [("README.md", 1), ("a.py", 2), ("b.cmake", 1)])

    def test_the_corpus_is_the_published_file(self):
        import hashlib
        with open(os.path.join(ROOT, "corpora", "tinyshakespeare.txt"), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        self.assertEqual(digest, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed")


if __name__ == "__main__":
    unittest.main()
