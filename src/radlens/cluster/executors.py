"""Where the job function runs: a local process pool or a Dask distributed cluster.

    EXECUTORS = {"local": LocalExecutor, "dask": DaskExecutor}

Both take the same options and answer the same two questions: run a function over many
jobs and yield each outcome as it completes (:meth:`Executor.map_unordered`), or run one
and wait (:meth:`Executor.call`, for ``radlens serve``). Scheduling, retries and a lost
worker are the engine's business: the local engine is :mod:`concurrent.futures`, the Dask
engine uses only Dask distributed's own primitives (``Client.map`` with ``pure=False``,
``as_completed``, ``retries=``, worker ``resources=``, and the scheduler's rescheduling
of the tasks of a worker that died). Dask is imported only when a Dask executor is made.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

from radlens.errors import ConfigError

J = TypeVar("J")
S = TypeVar("S")
R = TypeVar("R")


@dataclass(frozen=True)
class Completed(Generic[R]):
    """The outcome of one job: its ``value``, or the ``error`` that ended it."""

    index: int  # the job's position in the sequence given to ``map_unordered``
    value: R | None = None
    error: str = ""


class Executor(Protocol):
    """Runs ``fn(job, shared)`` for jobs, somewhere."""

    def map_unordered(
        self, fn: Callable[[J, S], R], jobs: Sequence[J], shared: S
    ) -> Iterator[Completed[R]]:
        """Yield one :class:`Completed` per job, in the order they finish."""
        ...

    def call(self, fn: Callable[[J, S], R], job: J, shared: S) -> R:
        """Run one job and return its value (its exception is raised here)."""
        ...

    def describe(self) -> str:
        """One line for people: the engine, where, how many workers."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


class _Closing(ABC):
    """The context-manager half of an :class:`Executor`: leaving the block closes it."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class LocalExecutor(_Closing):
    """A pool of ``workers`` processes on this machine (``0``: run in this process).

    Processes are started with ``spawn``, so a worker never inherits the driver's threads
    or open files. A worker process that dies breaks the pool: its outstanding jobs are
    reported as errors (a rerun does them), since the standard library has no retry.

    Example:
        >>> with LocalExecutor(workers=2) as pool:  # doctest: +SKIP
        ...     outcomes = list(pool.map_unordered(run_study, jobs, AnalysisSetup()))
    """

    def __init__(
        self,
        workers: int = 1,
        address: str = "",
        resources: Mapping[str, float] | None = None,
        retries: int = 0,
    ) -> None:
        if address:
            raise ConfigError("--address is for --engine dask; the local engine has no scheduler")
        if workers < 0:
            raise ConfigError(f"workers must be 0 or more, got {workers}")
        self.workers = workers
        self._pool: cf.ProcessPoolExecutor | None = None

    def _executor(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

    def map_unordered(
        self, fn: Callable[[J, S], R], jobs: Sequence[J], shared: S
    ) -> Iterator[Completed[R]]:
        if self.workers == 0:
            for index, job in enumerate(jobs):
                try:
                    yield Completed(index, fn(job, shared))
                except Exception as exc:  # the engine boundary: report, go on
                    yield Completed(index, error=_error_text(exc))
            return
        pool = self._executor()
        positions = {pool.submit(fn, job, shared): i for i, job in enumerate(jobs)}
        try:
            for future in cf.as_completed(positions):
                index = positions.pop(future)
                try:
                    yield Completed(index, future.result())
                except Exception as exc:  # BrokenProcessPool included
                    yield Completed(index, error=_error_text(exc))
        finally:
            for future in positions:
                future.cancel()

    def call(self, fn: Callable[[J, S], R], job: J, shared: S) -> R:
        if self.workers == 0:
            return fn(job, shared)
        return self._executor().submit(fn, job, shared).result()

    def describe(self) -> str:
        if self.workers == 0:
            return "local (in this process)"
        return f"local ({self.workers} process{'es' if self.workers != 1 else ''})"

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor(_Closing):
    """Dask distributed: the scheduler at ``address``, or a cluster of ``workers``
    processes started here on 127.0.0.1 (``LocalCluster``, one thread each).

    ``retries`` re-runs a task that raised (the job function returns typed input errors
    instead of raising, so only unexpected failures are retried); the tasks of a worker
    that died are rescheduled by the scheduler itself (up to its ``allowed-failures``).
    ``resources`` (e.g. ``{"radlens": 1}``) makes each task hold that much of a worker
    resource, so it runs only on workers started with ``--resources radlens=N``.

    Example:
        >>> with DaskExecutor(address="tcp://10.0.0.5:8786") as dask:  # doctest: +SKIP
        ...     print(dask.describe())
        dask tcp://10.0.0.5:8786 (4 workers, 4 threads)
    """

    def __init__(
        self,
        workers: int = 2,
        address: str = "",
        resources: Mapping[str, float] | None = None,
        retries: int = 2,
        connect_timeout_s: float = 30.0,
    ) -> None:
        dask = _distributed()
        self.resources = dict(resources) if resources else None
        self.retries = retries
        self._cluster: Any = None
        try:
            if address:
                self.client: Any = dask.Client(address, timeout=connect_timeout_s)
            else:
                # The decoder sandbox (io/sandbox.py) starts child processes, which a
                # daemonic worker process may not: Dask's default for nanny workers.
                _dask_config().set({"distributed.worker.daemon": False})
                self._cluster = dask.LocalCluster(
                    n_workers=max(workers, 1),
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    resources=self.resources,
                )
                self.client = dask.Client(self._cluster)
        except OSError as exc:  # the scheduler did not answer (TimeoutError is an OSError)
            if self._cluster is not None:
                self._cluster.close()
            where = address or "a local cluster"
            raise ConfigError(
                f"cannot reach the Dask scheduler at {where}: {type(exc).__name__}; "
                "check --address and that `dask scheduler` runs"
            ) from exc
        self._check_workers()

    def _check_workers(self) -> None:
        """Refuse workers that cannot run the decoder sandbox (daemonic processes)."""
        daemonic = self.client.run(_is_daemon)
        if any(daemonic.values()):
            self.close()
            raise ConfigError(
                "Dask worker processes are daemonic and cannot start radlens's decoder "
                "sandbox: start them with DASK_DISTRIBUTED__WORKER__DAEMON=False in the "
                "environment (or `dask worker --no-nanny`); see docs/scaling.md"
            )

    def map_unordered(
        self, fn: Callable[[J, S], R], jobs: Sequence[J], shared: S
    ) -> Iterator[Completed[R]]:
        if not jobs:
            return
        futures = self.client.map(
            fn,
            list(jobs),
            [shared] * len(jobs),  # small; positional, as the job function names it freely
            key="radlens-study",
            pure=False,
            retries=self.retries,
            resources=self.resources,
        )
        positions = {future.key: i for i, future in enumerate(futures)}
        try:
            for future in _distributed().as_completed(futures):
                index = positions[future.key]
                try:
                    outcome: Completed[R] = Completed(index, future.result())
                except Exception as exc:  # KilledWorker, CancelledError, the task's error
                    outcome = Completed(index, error=_error_text(exc))
                future.release()  # the cluster may forget the result now
                yield outcome
        finally:
            self.client.cancel([f for f in futures if not f.done()])

    def call(self, fn: Callable[[J, S], R], job: J, shared: S) -> R:
        future = self.client.submit(
            fn,
            job,
            shared,
            key=f"radlens-study-{_token()}",
            pure=False,
            retries=self.retries,
            resources=self.resources,
        )
        try:
            value: R = future.result()
            return value
        finally:
            future.release()

    def describe(self) -> str:
        info = self.client.scheduler_info(n_workers=-1)
        workers = info.get("workers", {})
        threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
        return f"dask {info.get('address', '')} ({len(workers)} workers, {threads} threads)"

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def quiet_dask_logs(level: str = "warning") -> None:
    """Dask logs every worker start and stop at INFO; keep its logs at ``level``."""
    _dask_config().set({"logging.distributed": level})
    logging.getLogger("distributed").setLevel(level.upper())


def _is_daemon() -> bool:
    return bool(multiprocessing.current_process().daemon)


def _dask_config() -> Any:
    import dask.config

    return dask.config


def _distributed() -> Any:
    """The ``distributed`` module (untyped for mypy), imported on first use."""
    import distributed

    return distributed


def _token() -> str:
    import uuid

    return uuid.uuid4().hex


EXECUTORS: dict[str, type[LocalExecutor] | type[DaskExecutor]] = {
    "local": LocalExecutor,
    "dask": DaskExecutor,
}
"""The engines ``radlens batch --engine`` and ``radlens serve --engine`` accept."""


def make_executor(
    engine: str,
    workers: int,
    address: str = "",
    resources: Mapping[str, float] | None = None,
) -> LocalExecutor | DaskExecutor:
    """The executor named ``engine`` (a key of :data:`EXECUTORS`).

    Raises:
        ConfigError: an unknown engine, or options it cannot use.
    """
    try:
        kind = EXECUTORS[engine]
    except KeyError:
        raise ConfigError(
            f"unknown engine {engine!r}; choose from {', '.join(EXECUTORS)}"
        ) from None
    return kind(workers=workers, address=address, resources=resources)
