"""The architecture in DESIGN.md, checked on the includes: model/ is written against the op seam
and core/ only (both backends' seams: backend/), and dist/ (communicators, gradient exchanges)
is included by train/ alone (and dist/ itself), so that data parallelism sits in one layer."""
import os
import re
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# Folder of src/ -> the folders of src/ its files may include (None: any).
RULES = {"model": {"model", "backend", "core"}}
ONLY_FROM = {"dist": {"train", "dist"}}  # folder -> the only folders that may include it


def violations(src):
    found = []
    for area in sorted(os.listdir(src)):
        folder = os.path.join(src, area)
        if not os.path.isdir(folder):
            continue
        for d, _, names in os.walk(folder):
            for n in sorted(names):
                if not n.endswith((".h", ".cpp", ".cu", ".cuh")):
                    continue
                path = os.path.join(d, n)
                with open(path, encoding="utf-8") as f:
                    for inc in INCLUDE.findall(f.read()):
                        if "/" not in inc:
                            continue
                        top = inc.split("/")[0]
                        allowed = RULES.get(area)
                        if (allowed is not None and top not in allowed) or (
                                top in ONLY_FROM and area not in ONLY_FROM[top]):
                            found.append((os.path.relpath(path, src), inc))
    return found


class Structure(unittest.TestCase):
    def test_layers(self):
        self.assertEqual(violations(os.path.join(ROOT, "src")), [])

    def test_a_planted_violation_is_found(self):
        with tempfile.TemporaryDirectory() as tmp:
            for area, text in [("model", '#include "dist/comm.h"\n'),
                               ("cli", '#include "dist/nccl.h"\n'),
                               ("train", '#include "dist/comm.h"\n#include "model/plan.h"\n')]:
                os.makedirs(os.path.join(tmp, area))
                with open(os.path.join(tmp, area, "x.cpp"), "w") as f:
                    f.write(text)
            self.assertEqual(violations(tmp), [("cli/x.cpp", "dist/nccl.h"),
                                               ("model/x.cpp", "dist/comm.h")])


if __name__ == "__main__":
    unittest.main()
