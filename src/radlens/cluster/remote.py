"""``radlens serve --engine dask``: the server's job workers analyze on a Dask cluster.

:class:`ClusterAnalyzer` is an ``Analyze`` callable (``store.jobs``): the server's worker
threads still claim jobs, and commit each result with its job state in one transaction;
only the analysis itself runs on the cluster. The stored files are sealed (encryption at
rest), so the analyzer reads their plaintext here, through the store, and sends it with
the task (:class:`~radlens.cluster.jobs.StudyJob` ``files``): workers need neither the
storage folder nor the keys. Run the cluster on a trusted network or with Dask's TLS.
"""

from __future__ import annotations

from pathlib import Path

from radlens.cluster.executors import DaskExecutor, Executor, LocalExecutor, make_executor
from radlens.cluster.jobs import AnalysisSetup, StudyFailed, StudyJob, model_set, run_study
from radlens.domain.findings import StudyResult
from radlens.domain.imaging import Instance, Study
from radlens.errors import ConfigError, InputError
from radlens.io.formats import instance_bytes
from radlens.models.registry import discover


class ClusterAnalyzer:
    """Analyze a study on ``executor`` with the models of ``model_dirs`` (and the zoo).

    Example:
        >>> analyze = cluster_analyzer("dask", "tcp://10.0.0.5:8786")  # doctest: +SKIP
        >>> analyze(study).priority  # doctest: +SKIP
        <Priority.ROUTINE: 0>
    """

    def __init__(self, executor: Executor, setup: AnalysisSetup) -> None:
        self.executor = executor
        self.setup = setup
        self.models = model_set(discover(list(setup.model_dirs), store=setup.model_store))

    def __call__(self, study: Study) -> StudyResult:
        files = tuple(
            (instance.location, _read(instance))
            for series in study.series
            for instance in series.instances
        )
        job = StudyJob(study.study_instance_uid, files=files)
        outcome = self.executor.call(run_study, job, self.setup)
        if isinstance(outcome, StudyFailed):
            raise InputError(None, outcome.reason)
        if outcome.models_key != self.models.key:
            raise ConfigError(
                f"worker {outcome.worker} has other models than the server "
                f"({self.models.text}); install the same radlens and models on every worker"
            )
        return outcome.result

    def close(self) -> None:
        self.executor.close()


def _read(instance: Instance) -> bytes:
    """The instance's plaintext: a zip member, a stored (sealed) file, or a plain file."""
    data = instance_bytes(instance)
    return data if data is not None else instance.path.read_bytes()


def cluster_analyzer(
    engine: str,
    address: str = "",
    workers: int = 1,
    model_dirs: tuple[Path, ...] = (),
    threads: int = 1,
    model_store: Path | None = None,
) -> ClusterAnalyzer:
    """The analyzer of ``radlens serve --engine ENGINE`` (``local`` runs a process pool).

    Raises:
        ConfigError: an unknown engine, or a scheduler that cannot be reached.
    """
    executor: LocalExecutor | DaskExecutor = make_executor(engine, workers, address)
    setup = AnalysisSetup(
        model_dirs=model_dirs,
        threads=threads,
        outputs=False,
        render=False,
        model_store=model_store,
    )
    try:
        return ClusterAnalyzer(executor, setup)
    except BaseException:
        executor.close()
        raise
