from __future__ import annotations

import operator

import pytest

from radlens.cluster.executors import (
    EXECUTORS,
    DaskExecutor,
    LocalExecutor,
    make_executor,
)
from radlens.errors import ConfigError
from serve_helpers import free_port


def test_the_registry_names_both_engines() -> None:
    assert {"local": LocalExecutor, "dask": DaskExecutor} == EXECUTORS


def test_in_process_executor_yields_every_job_and_keeps_errors_apart() -> None:
    with LocalExecutor(workers=0) as pool:
        done = list(pool.map_unordered(operator.truediv, [6, 1, 9], 3))
        expected = [(0, 2, ""), (1, 1 / 3, ""), (2, 3, "")]
        assert [(c.index, c.value, c.error) for c in done] == expected
        failed = list(pool.map_unordered(operator.truediv, [1], 0))
        assert failed[0].value is None and failed[0].error.startswith("ZeroDivisionError")
        assert pool.call(operator.mul, 6, 7) == 42
        assert pool.describe() == "local (in this process)"


def test_process_pool_runs_jobs_in_other_processes() -> None:
    with LocalExecutor(workers=2) as pool:
        done = sorted(pool.map_unordered(operator.mul, [1, 2, 3, 4], 10), key=lambda c: c.index)
        assert [c.value for c in done] == [10, 20, 30, 40]
        bad = list(pool.map_unordered(operator.truediv, [1], 0))
        assert bad[0].error.startswith("ZeroDivisionError")
        assert pool.describe() == "local (2 processes)"


def test_make_executor_refuses_unknown_engines_and_misplaced_options() -> None:
    with pytest.raises(ConfigError, match="unknown engine 'spark'"):
        make_executor("spark", 1)
    with pytest.raises(ConfigError, match="--address is for --engine dask"):
        make_executor("local", 1, address="tcp://127.0.0.1:8786")


def test_an_unreachable_scheduler_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler"):
        DaskExecutor(address=f"tcp://127.0.0.1:{free_port()}", connect_timeout_s=1)
