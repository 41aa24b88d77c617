"""Fuzzing the intake path (parse + route + decode) on mutated real DICOM files.

The property (``fuzz_helpers.check_input``): an input succeeds or raises an
:class:`~radlens.errors.InputError` subclass, within a time budget; any other exception
is a crash. The hypothesis test runs ``RADLENS_FUZZ_EXAMPLES`` inputs (default 8,000),
for at most ``RADLENS_FUZZ_SECONDS`` (default 30) in the ordinary suite; ``make fuzz``
runs the coverage-guided atheris campaign (``benchmarks/fuzz_intake.py``, results in
``benchmarks/fuzz.md``). Every crash either found is kept in ``fuzz_regressions/`` and
replayed here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_helpers import REGRESSIONS_DIR, check_input, find_pydicom_data, seed_corpus

SEEDS = seed_corpus(find_pydicom_data())
BUDGET_S = 10.0  # per input; the slowest seed decodes in ~30 ms
FUZZ_SECONDS = float(os.environ.get("RADLENS_FUZZ_SECONDS", "30"))
FUZZ_EXAMPLES = int(os.environ.get("RADLENS_FUZZ_EXAMPLES", "8000"))
_INTERESTING = (
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",  # undefined length
    b"\xff\x7f\x00\x00",
    b"\xfe\xff\x00\xe0",  # item
    b"\xfe\xff\xdd\xe0",  # sequence delimiter
    b"SQ",
    b"UN",
    b"OB",
    b"\xe0\x7f\x10\x00",  # pixel data tag
)


@st.composite
def mutated_dicom(draw: st.DrawFn) -> bytes:
    """A seed with 1-8 mutations, most of them in the first 2 KiB (the header)."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        limit = min(len(data), 2048) if draw(st.booleans()) else len(data)
        at = draw(st.integers(0, limit - 1))
        kind = draw(st.sampled_from(["byte", "value", "delete", "insert", "cut"]))
        if kind == "byte":
            data[at] = draw(st.integers(0, 255))
        elif kind == "value":
            value = draw(st.sampled_from(_INTERESTING))
            data[at : at + len(value)] = value
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at:]
    return bytes(data)


_started: dict[str, float] = {}


@pytest.mark.fuzz
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,  # the per-input budget is check_input's, shared cores make timing noisy
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=mutated_dicom())
def test_intake_of_mutated_files_succeeds_or_raises_a_typed_error(data: bytes) -> None:
    started = _started.setdefault("at", time.monotonic())
    if time.monotonic() - started > FUZZ_SECONDS:
        return  # the bounded run is over; hypothesis finishes its count quickly
    check_input(data, BUDGET_S)


_REPLAY = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (4 * 1024**3, resource.RLIM_INFINITY))
from fuzz_helpers import check_input
outcomes = {}
for path in sys.argv[2:]:
    try:
        outcomes[path] = check_input(open(path, "rb").read(), 10.0)
    except BaseException as exc:
        outcomes[path] = f"CRASH {type(exc).__name__}: {exc}"[:300]
print(json.dumps(outcomes))
"""


@pytest.fixture(scope="module")
def replayed() -> dict[str, str]:
    """Every kept input, run in a child whose address space is capped at 4 GiB: one of
    them once grew past 20 GiB, and a regression must not take the test machine with it."""
    paths = [str(p) for p in sorted(REGRESSIONS_DIR.glob("*.dcm"))]
    tests_dir = str(Path(__file__).parents[1])
    done = subprocess.run(
        [sys.executable, "-c", _REPLAY, tests_dir, *paths],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outcomes: dict[str, str] = json.loads(done.stdout.splitlines()[-1])
    return outcomes


@pytest.mark.parametrize(
    "path", sorted(REGRESSIONS_DIR.glob("*.dcm")), ids=lambda p: p.name.removesuffix(".dcm")
)
def test_inputs_the_fuzzers_found_end_in_a_typed_error_or_an_image(
    path: Path, replayed: dict[str, str]
) -> None:
    """Each crashed radlens once (or, for GDCM, the whole process). Most are refused; a
    stream one RLE decoder panics on is decoded by the next one."""
    outcome = replayed[str(path)]
    assert outcome.startswith(("refused: ", "decoded")), outcome


def test_every_seed_decodes_or_is_refused() -> None:
    assert len(SEEDS) >= 10
    outcomes = [check_input(seed, BUDGET_S) for seed in SEEDS]
    assert sum(o.startswith("decoded") for o in outcomes) >= 10
