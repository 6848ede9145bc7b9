#!/usr/bin/env python3
"""Issue 4's GPU memory criterion from `finegpt bench --device cuda` logs: the device memory a
model takes (free memory before it minus after its training steps, cudaMemGetInfo) must be within
3% of the plan plus the fixed overhead, the overhead measured once on the first (smallest) run
and then applied to the others. Reads the bench logs named on the command line (their JSON lines,
"impl": "finegpt-cuda"), prints one row per run and a verdict; exits 1 when a run misses.

usage: gpu_memory_check.py FIRST.log OTHER.log ...
"""
import json
import sys

TOLERANCE = 0.03


def record(path):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("{") and '"finegpt-cuda"' in line:
                    return json.loads(line)
    except OSError:
        pass
    return None


def main(paths):
    if len(paths) < 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    runs = [(p, record(p)) for p in paths]
    runs = [(p, r) for p, r in runs if r]
    if len(runs) < 2:
        print("gpu memory check: fewer than two bench runs with results (no GPU?)")
        return 0
    mib = 1 << 20
    first_path, first = runs[0]
    overhead = first["model_bytes"] - first["plan_bytes"]
    print(f"gpu memory check: fixed overhead {overhead / mib:.1f} MiB, measured on {first_path}")
    print(f"{'run':<28} {'plan MiB':>10} {'+overhead':>10} {'measured':>10} {'error':>8}")
    ok = True
    for path, r in runs[1:]:
        expected = r["plan_bytes"] + overhead
        err = (r["model_bytes"] - expected) / expected
        ok &= abs(err) <= TOLERANCE
        print(f"{path.rsplit('/', 1)[-1]:<28} {r['plan_bytes'] / mib:>10.1f} "
              f"{expected / mib:>10.1f} {r['model_bytes'] / mib:>10.1f} {100 * err:>7.2f}%")
    print(f"gpu memory check: {'every run within' if ok else 'a run misses'} "
          f"{100 * TOLERANCE:.0f}% of plan + overhead")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
