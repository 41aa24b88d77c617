"""Ensemble members trained W at a time in worker processes (``schedule.workers``).

A member is a recipe with seed ``seed + k``; the job that fits it (a classifier's
``train.train_member``, a detector's ``detection.fit_detector_member``) runs in a spawned
process with ``schedule.threads`` threads, so no thread pool is inherited mid-use, and
returns the same network it would in this process. The console shows each member's log
records as they come, named by member; the caller's ``train.log`` gets them when every
member has finished, in member order with their own times, so it reads as if the members
had trained in turn.

The worker processes and the manager process that carries their progress each watch the
process that started them: when it is gone (killed, even by SIGKILL, which no handler in the
parent sees), they exit within a second instead of training on, orphaned, for an hour.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from radlens.training.recipe import Recipe

# job(recipe, member, *args, log) -> the fitted network
Job = Callable[..., torch.nn.Module]


class _Kept(logging.Handler):
    """Keeps a worker's log records (as dicts, which pickle) for the parent to re-emit, and
    sends each one to the parent at once (``progress``) so it shows while the member
    trains."""

    def __init__(self, member: int, progress: Any) -> None:
        super().__init__(logging.INFO)
        self.member = member
        self.progress = progress
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        kept = dict(record.__dict__)
        kept.update(msg=record.getMessage(), args=None, exc_info=None, exc_text=None)
        self.records.append(kept)
        if self.progress is not None:
            self.progress.put((self.member, kept))


# The queue a worker process sends its progress on (set by ``_start_worker`` when the
# process starts).
_progress: Any = None


# How often a worker or the manager checks that its parent is still there (seconds).
PARENT_CHECK_S = 0.5


def _exit_with_parent() -> None:
    """In a child process: a daemon thread that ends the process (``os._exit``) once the
    process that started it is gone (the child is re-parented, so ``getppid`` changes)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="radlens-parent-watch", daemon=True).start()


def _start_worker(progress: Any) -> None:
    global _progress
    _exit_with_parent()
    _progress = progress


def _member_process(
    job: Job, recipe: Recipe, member: int, args: Sequence[Any]
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Runs in a worker process: one member, and its log records."""
    torch.set_num_threads(recipe.schedule.threads)
    log = logging.getLogger(f"radlens.train.member{member}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.handlers.clear()
    kept = _Kept(member, _progress)
    log.addHandler(kept)
    net = job(recipe, member, *args, log)
    return net.state_dict(), kept.records


def _handle(log: logging.Logger, record: logging.LogRecord, files: bool) -> None:
    """``record`` to the logger's file handlers (``files``) or to its other handlers."""
    for handler in log.handlers:
        if isinstance(handler, logging.FileHandler) == files and record.levelno >= handler.level:
            handler.handle(record)


def _show_progress(log: logging.Logger, progress: Any, members: int) -> None:
    """Until the ``None`` that ends it: each worker record to the console handlers at once,
    named by its member ("member 2/4: epoch 7/80 ...")."""
    while (item := progress.get()) is not None:
        member, kept = item
        name = f"member {member + 1}/{members}: "
        message = kept["msg"] if kept["msg"].startswith(name) else name + kept["msg"]
        _handle(log, logging.makeLogRecord({**kept, "msg": message, "name": log.name}), False)


def run_members(
    recipe: Recipe,
    job: Job,
    args: Sequence[Any],
    build: Callable[[], torch.nn.Module],
    log: logging.Logger,
) -> list[torch.nn.Module]:
    """Every member of ``recipe.schedule.ensemble``: ``job(recipe, k, *args, log)``,
    ``schedule.workers`` at a time in worker processes (in this process, one after another,
    when one worker or one member). ``build()`` makes an untrained network a member's
    weights load into. ``job`` must be a module-level function (it is pickled)."""
    n = recipe.schedule.ensemble
    workers = min(recipe.schedule.workers, n)
    if workers <= 1:
        return [job(recipe, k, *args, log) for k in range(n)]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing.managers import SyncManager

    log.info("%d members, %d at a time in worker processes", n, workers)
    context = multiprocessing.get_context("spawn")
    # A manager's queue: a worker's put returns once the record is with the parent, so every
    # record is in before its member's result, and before the None that ends the display.
    manager = SyncManager(ctx=context)
    manager.start(_exit_with_parent)
    with manager:
        progress = manager.Queue()
        shown = threading.Thread(target=_show_progress, args=(log, progress, n), daemon=True)
        shown.start()
        try:
            with ProcessPoolExecutor(
                max_workers=workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(progress,),
            ) as pool:
                futures = [
                    pool.submit(_member_process, job, recipe, k, tuple(args)) for k in range(n)
                ]
                results = [f.result() for f in futures]
        finally:
            progress.put(None)
            shown.join()
    members: list[torch.nn.Module] = []
    for state, records in results:
        for record in records:
            _handle(log, logging.makeLogRecord({**record, "name": log.name}), True)
        net = build()
        net.load_state_dict(state)
        members.append(net.eval())
    return members
