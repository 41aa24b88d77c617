"""Inference backends behind one small Protocol.

``OnnxBackend`` runs ONNX Runtime on the CPU with a per-process session cache; it is the
only place radlens imports onnxruntime. ``FakeBackend`` wraps a function so unit tests can
exercise prediction without weights.

Example:
    >>> fake = FakeBackend(lambda x: {"logits": np.zeros((len(x), 2), np.float32)})
    >>> fake.run(np.zeros((3, 1, 8, 8), np.float32))["logits"].shape
    (3, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from radlens.errors import InferenceError


class Backend(Protocol):
    """Runs a batch ``(B, C, ...)`` float32 and returns named outputs."""

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...


class FakeBackend:
    """A backend made from a function, for tests."""

    def __init__(self, fn: Callable[[np.ndarray], dict[str, np.ndarray]]) -> None:
        self.fn = fn

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self.fn(batch)


class OnnxBackend:
    """ONNX Runtime on the CPU.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (1 for one core per worker; 0 lets ORT decide).
        max_batch: inputs are run in chunks of at most this many.
    """

    _sessions: dict[tuple[str, int], object] = {}

    def __init__(self, path: Path, threads: int = 1, max_batch: int = 32) -> None:
        self.path = path
        self.threads = threads
        self.max_batch = max_batch
        self._session = self._get_session(path, threads)
        self._input = self._session.get_inputs()[0].name  # type: ignore[attr-defined]
        self._outputs = [o.name for o in self._session.get_outputs()]  # type: ignore[attr-defined]

    @classmethod
    def forget(cls, path: Path) -> None:
        """Drop cached sessions of ``path`` (after the file was rewritten)."""
        resolved = str(path.resolve())
        for key in [k for k in cls._sessions if k[0] == resolved]:
            del cls._sessions[key]

    @classmethod
    def _get_session(cls, path: Path, threads: int) -> object:
        key = (str(path.resolve()), threads)
        if key not in cls._sessions:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            try:
                cls._sessions[key] = ort.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # ORT raises its own untyped errors
                raise InferenceError(f"{path}: cannot load ONNX model: {exc}") from exc
        return cls._sessions[key]

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        chunks: list[list[np.ndarray]] = []
        for start in range(0, len(batch), self.max_batch):
            part = np.ascontiguousarray(batch[start : start + self.max_batch], np.float32)
            try:
                chunks.append(self._session.run(self._outputs, {self._input: part}))  # type: ignore[attr-defined]
            except Exception as exc:
                raise InferenceError(f"{self.path.name}: inference failed: {exc}") from exc
        return {
            name: np.concatenate([c[i] for c in chunks]) for i, name in enumerate(self._outputs)
        }
