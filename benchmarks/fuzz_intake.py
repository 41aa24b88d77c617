"""Coverage-guided fuzzing of the intake path with atheris (libFuzzer): ``make fuzz``.

The target is ``tests/fuzz_helpers.intake_once`` (header parse, routing, pixel decoding),
the same one the hypothesis test in ``tests/io/test_fuzz.py`` runs for a bounded time.
The property: every input ends in success or an ``InputError`` subclass. Anything else
is a crash; an input that runs past ``--timeout`` seconds is a hang (libFuzzer's
``-timeout``); a process past ``--rss-mb`` is an out-of-memory finding.

A Python exception is recorded (input saved under ``WORK/crashes/``) and fuzzing goes
on; a hard crash, hang or OOM ends the libFuzzer process, whose artifact is recorded
and which is started again on the same corpus until ``--seconds`` have passed. At the
end the totals go to ``--out`` (JSON), machine and date included::

    python benchmarks/fuzz_intake.py --seconds 3600 --out benchmarks/fuzz.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATS_EVERY = 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--timeout", type=int, default=10, help="per input, seconds")
    parser.add_argument("--rss-mb", type=int, default=4096)
    parser.add_argument("--work", type=Path, default=Path("/tmp/radlens-fuzz"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.worker:
        _worker(args.work, rest)
    else:
        _campaign(args)


def _campaign(args: argparse.Namespace) -> None:
    work: Path = args.work
    for sub in ("corpus", "crashes", "artifacts", "stats"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    _write_seeds(work / "corpus")
    started = time.monotonic()
    restarts = 0
    while (left := args.seconds - (time.monotonic() - started)) > 5:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            "--work",
            str(work),
            str(work / "corpus"),
            f"-max_total_time={int(left)}",
            f"-timeout={args.timeout}",
            f"-rss_limit_mb={args.rss_mb}",
            f"-artifact_prefix={work / 'artifacts'}/",
            "-max_len=65536",
            "-print_final_stats=1",
        ]
        with (work / "fuzz.log").open("a") as log:
            log.write(f"\n=== start {datetime.now(UTC).isoformat()} ({left:.0f} s left)\n")
            log.flush()
            code = subprocess.call(command, stdout=log, stderr=log, cwd=ROOT)
        if code == 0:
            break
        restarts += 1
    summary = _summary(work, time.monotonic() - started, restarts)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


def _write_seeds(corpus: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from fuzz_helpers import find_pydicom_data, seed_corpus  # type: ignore[import-not-found]

    for seed in seed_corpus(find_pydicom_data()):
        (corpus / f"seed-{hashlib.sha1(seed).hexdigest()}").write_bytes(seed)


def _worker(work: Path, libfuzzer_args: list[str]) -> None:
    import atheris

    sys.path.insert(0, str(ROOT / "tests"))
    with atheris.instrument_imports(include=["radlens", "pydicom"]):
        import fuzz_helpers  # type: ignore[import-not-found]
        from radlens.errors import InputError

    fuzz_helpers.fuzz_models()  # read the model cards once, outside the timed runs
    stats_file = work / "stats" / f"{os.getpid()}.json"
    stats = {"executions": 0, "python_exceptions": 0, "started": time.time()}

    def one_input(data: bytes) -> None:
        stats["executions"] += 1
        if stats["executions"] % STATS_EVERY == 0:
            stats_file.write_text(json.dumps(stats))
        try:
            fuzz_helpers.intake_once(data)
        except InputError:
            return
        except Exception as exc:  # the finding: save it and go on
            stats["python_exceptions"] += 1
            digest = hashlib.sha1(data).hexdigest()
            (work / "crashes" / f"{digest}.bin").write_bytes(data)
            where = traceback.extract_tb(exc.__traceback__)[-1]
            line = f"{type(exc).__name__}: {exc} at {where.filename}:{where.lineno}"
            (work / "crashes" / f"{digest}.txt").write_text(" ".join(line.split())[:500])
            stats_file.write_text(json.dumps(stats))

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    try:
        atheris.Fuzz()
    finally:
        stats_file.write_text(json.dumps(stats))


def _summary(work: Path, seconds: float, restarts: int) -> dict[str, object]:
    executions = sum(
        json.loads(p.read_text())["executions"] for p in (work / "stats").glob("*.json")
    )
    crashes = sorted(p.read_text() for p in (work / "crashes").glob("*.txt"))
    artifacts = sorted(p.name for p in (work / "artifacts").iterdir())
    return {
        "tool": "atheris (libFuzzer), benchmarks/fuzz_intake.py",
        "target": "tests/fuzz_helpers.intake_once: parse_header + route + decode_instance",
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "python": platform.python_version(),
        "seconds": round(seconds),
        "executions": executions,
        "executions_per_s": round(executions / seconds, 1) if seconds else 0,
        "python_exceptions": crashes,
        "hard_crashes_hangs_ooms": [a for a in artifacts if not a.startswith("seed")],
        "libfuzzer_restarts": restarts,
        "corpus_files": len(list((work / "corpus").iterdir())),
    }


if __name__ == "__main__":
    main()
