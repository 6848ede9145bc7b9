"""bench/hellaswag_synth.py (device_check's HellaSwag timing input): its file is in HellaSwag's
format and finegpt eval --hellaswag reads it; its rows have the lengths the script states; its
model writer gives an llm.c file finegpt loads (checked at a small shape: 124M is 500 MB)."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from finegpt_testing import ROOT, CliTest, run  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "bench"))
import hellaswag_synth  # noqa: E402


class HellaswagSynth(CliTest):
    def test_file_and_model_are_read_by_finegpt(self):
        jsonl = os.path.join(self.tmp, "h.jsonl")
        hellaswag_synth.write_examples(jsonl, 40, seed=1)
        with open(jsonl) as f:
            rows = [json.loads(line) for line in f]
        self.assertEqual(len(rows), 40)
        for r in rows:
            self.assertEqual(len(r["endings"]), 4)
            self.assertIn(r["label"], range(4))
            self.assertTrue(12 <= len(r["ctx"].split()) < 90)
        model = os.path.join(self.tmp, "m.bin")
        n = hellaswag_synth.write_gpt2_124m(model, 0, L=1, NH=2, C=64, T=256)
        self.assertEqual(os.path.getsize(model), 1024 + 4 * n)
        p = run("eval", f"--init_from={model}", f"--hellaswag={jsonl}", "--json", "--quiet",
                check=True)
        out = json.loads(p.stdout)
        self.assertEqual((out["examples"], out["cropped"]), (40, 0))


if __name__ == "__main__":
    unittest.main()
