"""Run the test suite as separate pytest processes, several at a time: `make test`, `make unit`, `make nbval`.

Why separate processes. In one pytest process for the whole suite, after every
native library (torch, OpenVINO, ONNX Runtime, ITK, SimpleITK) was loaded,
starting a child process (papermill kernels, make) segfaulted in three
fresh-clone runs (2026-12-01); subsets of the suite do not reproduce it. Until
the cause is found, each test area (a folder under ``tests/`` or a top-level
``tests/test_*.py``) and each notebook's nbval run get their own process.

Why several at a time. Most of the suite is Python-bound or waits on child
processes (kernels, servers, a browser), so one job at a time left a core idle
for much of the run. ``--jobs`` processes run at once (default: the number of
CPUs, at most 4; ``--jobs 1`` is the old sequential order). Every job's output
is printed whole when it ends, so logs never interleave. Jobs cannot collide:
each pytest session has its own cache and reports folders (tests/conftest.py)
and its own temporary root, notebooks pin their own torch thread count (so
their checked numbers do not depend on what runs beside them), and the shared
phantom cache is built atomically.

Two jobs at once on few cores need ``OMP_WAIT_POLICY=PASSIVE`` (set for every job
when ``--jobs`` > 1 unless the caller set it). OpenMP threads otherwise spin
while they wait at a barrier; two torch processes of 2 threads each on 2 cores
then slowed each other about 12x (a conv3d training step plus small matmuls:
0.56 s alone, 6.8 s each as a pair; 1.1 s each with passive waiting), and
notebook 02's nbval took 623 s instead of about 150 s. The wait policy changes
when threads sleep, not what they compute, so checked numbers are unaffected.

After a failure no new job starts; the running ones finish and the command exits 1
with the failed jobs listed. Extra arguments go to every pytest command.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: nbval as every notebook job runs it (and the notebook tests, from other folders: the paths are absolute;
#: ``tools.nbval_tolerance`` needs the checkout on ``PYTHONPATH`` there).
NBVAL = ["--nbval-lax", "--nbval-current-env", "--nbval-sanitize-with", str(ROOT / "tests" / "notebooks" / "sanitize.cfg"),
         "-p", "tools.nbval_tolerance", "--nbval-tolerance", str(ROOT / "tests" / "notebooks" / "tolerance.yaml"),
         "-p", "no:cacheprovider"]


@dataclass
class Job:
    name: str
    args: list[str]
    started: float = 0.0
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    seconds: float = 0.0
    returncode: int | None = None


def unit_targets(root: Path = ROOT) -> list[str]:
    """Every test area: ``tests/<folder>/`` (with tests in it) and ``tests/test_*.py``, sorted."""
    tests = root / "tests"
    folders = sorted(p for p in tests.iterdir() if p.is_dir() and any(p.glob("test_*.py")))
    files = sorted(tests.glob("test_*.py"))
    return [str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in [*folders, *files]]


def notebooks(root: Path = ROOT) -> list[str]:
    return [str(p.relative_to(root)) for p in sorted((root / "notebooks").glob("*.ipynb"))]


def plan(kinds: list[str], extra: list[str], root: Path = ROOT) -> list[Job]:
    """The jobs in start order: notebooks first (each runs minutes), then the unit-test areas."""
    jobs: list[Job] = []
    if "nbval" in kinds:
        jobs += [Job(f"nbval {nb}", ["-m", "pytest", *NBVAL, nb, *extra]) for nb in notebooks(root)]
    if "unit" in kinds:
        jobs += [Job(t, ["-m", "pytest", t, *extra]) for t in unit_targets(root)]
    return jobs


def _start(job: Job, number: int, scratch: Path, parallel: int) -> None:
    job.log = scratch / f"{number}.log"
    temproot = scratch / f"tmp-{number}"
    temproot.mkdir()
    env = {**os.environ, "PYTEST_DEBUG_TEMPROOT": str(temproot)}
    if parallel > 1:
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with job.log.open("wb") as out:
        job.process = subprocess.Popen([sys.executable, *job.args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                       env=env)
    job.started = time.perf_counter()


def _report(job: Job) -> None:
    assert job.log is not None
    status = "passed" if job.returncode == 0 else f"FAILED (exit {job.returncode})"
    sys.stdout.write(f"\n===== {job.name}: {status} in {job.seconds:.0f} s =====\n")
    sys.stdout.flush()
    sys.stdout.buffer.write(job.log.read_bytes())
    sys.stdout.flush()


def run(jobs: list[Job], parallel: int) -> int:
    """Run ``jobs`` ``parallel`` at a time; 0 when all passed."""
    pending, running, done = list(jobs), [], []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="medbench-test-jobs-") as tmp:
        scratch = Path(tmp)
        failed = False
        while pending or running:
            while pending and not failed and len(running) < parallel:
                job = pending.pop(0)
                _start(job, len(jobs) - len(pending), scratch, parallel)
                running.append(job)
            if failed and not running:
                break
            time.sleep(0.2)
            for job in list(running):
                assert job.process is not None
                rc = job.process.poll()
                if rc is None:
                    continue
                job.returncode, job.seconds = rc, time.perf_counter() - job.started
                running.remove(job)
                done.append(job)
                _report(job)
                failed = failed or rc != 0
    total = time.perf_counter() - t0
    bad = [j for j in done if j.returncode != 0]
    skipped = len(jobs) - len(done)
    sys.stdout.write(f"\n===== {len(done) - len(bad)} of {len(jobs)} test jobs passed in {total:.0f} s "
                     f"({parallel} at a time)")
    if bad:
        sys.stdout.write(f"; failed: {', '.join(j.name for j in bad)}")
    if skipped:
        sys.stdout.write(f"; not started after the failure: {skipped}")
    sys.stdout.write(" =====\n")
    for job in sorted(done, key=lambda j: -j.seconds):
        sys.stdout.write(f"  {job.seconds:7.0f} s  {job.name}\n")
    return 1 if bad or skipped else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=None, help="processes at once (default: CPUs, at most 4)")
    parser.add_argument("--only", choices=["unit", "nbval"], default=None, help="run only this part")
    args, extra = parser.parse_known_args(argv)
    parallel = args.jobs if args.jobs else min(os.cpu_count() or 1, 4)
    kinds = [args.only] if args.only else ["unit", "nbval"]
    return run(plan(kinds, extra), max(1, parallel))


if __name__ == "__main__":
    sys.exit(main())
