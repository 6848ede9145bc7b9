"""`finegpt download` throughput and peak memory against a local stand-in hub (tests/net/fake_hub.py
on 127.0.0.1), next to what the same bytes cost without finegpt on the same machine:

  server -> /dev/null   curl (the command-line tool) reading the file and dropping it: what the
                        stand-in server can send, the ceiling for any client here
  curl -> disk          curl writing the files to the disk (all at once, -Z), then fsynced: what
                        a client that checks nothing gets through the same disk
  disk copy             dd of the same bytes from a cached file to a new file, with fsync: what
                        the disk takes
  finegpt download      to disk, through sha256, fsynced and renamed (what users run)
  finegpt to tmpfs      the same into /dev/shm (memory): finegpt without the disk

Each file size runs once with one file and once as 4 files with --parallel 4. Peak RSS is the
child's (os.wait4), so it shows whether memory grows with the file size. `--baseline PATH` times
another finegpt binary (an earlier commit's) the same way against the same server, alternating
with this one, for a before/after on the same machine in the same run. Usage:
  .venv/bin/python bench/download_bench.py [--sizes-mb 256,1024] [--finegpt build/finegpt]
                                           [--baseline OLD_FINEGPT]
"""
import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "net"))
from fake_hub import FakeHub, Repo  # noqa: E402


def timed(cmd, env=None):
    """Wall seconds, peak RSS (MiB) and CPU seconds (user + system) of one child process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    secs = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {p.stderr.read().decode()}")
    return secs, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def serve(folder):
    """The stand-in hub over the files of `folder` (run as its own process: the bench's process
    stays small, so the children it forks start small and their peak RSS is their own)."""
    files = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            files[f"sample/10BT/{name}"] = f.read()
    with FakeHub(page_size=100) as hub:
        hub.add(Repo("dataset", "HuggingFaceFW/fineweb", files, lfs=list(files)))
        print(hub.endpoint, flush=True)
        sys.stdin.read()  # until the bench closes our stdin


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes-mb", default="256,1024")
    ap.add_argument("--finegpt", default=os.path.join(HERE, "..", "build", "finegpt"))
    ap.add_argument("--baseline", help="another finegpt binary, timed the same way")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args.serve)
    sizes = [int(s) for s in args.sizes_mb.split(",")]
    print(f"# {platform.node()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    binaries = [("finegpt", args.finegpt)] + ([("baseline", args.baseline)] if args.baseline else [])
    print("| case | bytes | binary | curl -> /dev/null MB/s | curl -> disk + fsync MB/s | "
          "dd conv=fsync MB/s | dd CPU s | to disk MB/s | / curl to disk | / dd | CPU s of wall s | peak RSS MiB | to tmpfs MB/s | tmpfs CPU s of wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for mb in sizes:
        for n_files in (1, 4):
            per_file = mb * 2**20 // n_files
            total = per_file * n_files
            with tempfile.TemporaryDirectory(dir=os.path.join(HERE, "..")) as tmp:
                src_dir = os.path.join(tmp, "src")
                os.makedirs(src_dir)
                digests = {}
                for k in range(n_files):
                    name = f"{k:03d}_00000.parquet"
                    h = hashlib.sha256()
                    with open(os.path.join(src_dir, name), "wb") as f:
                        for _ in range(per_file // 2**20):
                            block = os.urandom(2**20)
                            h.update(block)
                            f.write(block)
                    digests[name] = h.hexdigest()
                server = subprocess.Popen([sys.executable, __file__, "--serve", src_dir],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                endpoint = server.stdout.readline().strip()
                try:
                    # The server alone: curl to /dev/null, one file after another.
                    t_curl = 0
                    for name in digests:
                        url = f"{endpoint}/datasets/HuggingFaceFW/fineweb/resolve/main/sample/10BT/{name}"
                        t_curl += timed(["curl", "-sfL", "-o", "/dev/null", url])[0]
                    # Another client to the same disk: curl writing the files (all at once, as
                    # finegpt does with --parallel), then fsynced as finegpt does.
                    cmd = ["curl", "-sfL", "-Z"]
                    outs = []
                    for name in digests:
                        outs.append(os.path.join(tmp, "curl-" + name))
                        cmd += ["-o", outs[-1], f"{endpoint}/datasets/HuggingFaceFW/fineweb/"
                                f"resolve/main/sample/10BT/{name}"]
                    t0 = time.perf_counter()
                    timed(cmd)
                    timed(["sync", *outs])
                    t_curl_disk = time.perf_counter() - t0
                    for f in outs:
                        os.remove(f)
                    # The disk alone: dd of the same bytes from a cached file, fsynced.
                    t_dd = cpu_dd = 0
                    for name in digests:
                        secs, _, cpu = timed(["dd", f"if={os.path.join(src_dir, name)}",
                                       f"of={os.path.join(tmp, 'dst.bin')}", "bs=1M",
                                       "conv=fsync", "status=none"])
                        t_dd += secs
                        cpu_dd += cpu
                        os.remove(os.path.join(tmp, "dst.bin"))
                    env = dict(os.environ, HF_ENDPOINT=endpoint)
                    runs = {}
                    for label, binary in binaries:
                        dest = os.path.join(tmp, "fw-" + label)
                        disk = timed([binary, "download", "HuggingFaceFW/fineweb", "--name",
                                      "sample-10BT", "--to", dest, "--quiet", "--parallel",
                                      str(n_files)], env=env)
                        check(dest, digests)
                        shutil.rmtree(dest)
                        shm = tempfile.mkdtemp(dir="/dev/shm")
                        try:
                            mem = timed([binary, "download", "HuggingFaceFW/fineweb", "--name",
                                         "sample-10BT", "--to", shm, "--quiet", "--parallel",
                                         str(n_files)], env=env)
                            check(shm, digests)
                        finally:
                            shutil.rmtree(shm)
                        runs[label] = disk, mem
                finally:
                    server.stdin.close()
                    server.wait()
            mbs = lambda t: total / 1e6 / t  # noqa: E731
            for label, _ in binaries:
                (t_fg, rss, cpu), (t_shm, _, cpu_shm) = runs[label]
                print(f"| {n_files} file{'s' if n_files > 1 else ''}, --parallel {n_files} | "
                      f"{total / 2**20:.0f} MiB | {label} | {mbs(t_curl):.0f} | {mbs(t_curl_disk):.0f} | "
                      f"{mbs(t_dd):.0f} | {cpu_dd:.2f} | {mbs(t_fg):.0f} | "
                      f"{t_curl_disk / t_fg:.2f} | {t_dd / t_fg:.2f} | {cpu:.2f} of {t_fg:.2f} | "
                      f"{rss:.1f} | {mbs(t_shm):.0f} | {cpu_shm:.2f} of {t_shm:.2f} |", flush=True)


def check(folder, digests):
    """The downloaded files are the served bytes (hashlib's sha256)."""
    for name, digest in digests.items():
        h = hashlib.sha256()
        with open(os.path.join(folder, "sample", "10BT", name), "rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
        assert h.hexdigest() == digest, name

if __name__ == "__main__":
    main()
