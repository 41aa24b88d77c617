"""``radlens quantize MODEL --data PATH``: keep a static INT8 variant where it pays.

Needs the ``onnx`` package (``radlens[train]``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from radlens.cli.analyze import Json, ModelsDir, model_folder
from radlens.cli.render import out
from radlens.errors import ConfigError


def quantize_command(
    model: Annotated[str, typer.Argument(help="installed model name, or a model folder")],
    data: Annotated[Path, typer.Option(help="MedMNIST .npz or a labelled image folder")],
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads for the AUC runs")] = 1,
    max_drop: Annotated[
        float, typer.Option("--max-drop", help="largest val AUC drop that keeps INT8")
    ] = 0.002,
    max_calibration: Annotated[
        int, typer.Option(help="calibrate on at most this many train images")
    ] = 256,
    as_json: Json = False,
    models_dir: ModelsDir = None,
) -> None:
    """Calibrate an INT8 copy of a model; keep it only if faster and val AUC holds."""
    try:
        from radlens.training.quantize import quantize_model
    except ModuleNotFoundError as exc:
        # Not "radlens[train]": the CLI prints errors through rich, which eats "[train]".
        raise ConfigError(
            f"quantization needs the onnx package of the train extra: pip install onnx "
            f"({exc.name} is missing)"
        ) from exc
    folder = model_folder(model, models_dir)
    report = quantize_model(
        folder, data, threads=threads, max_auc_drop=max_drop, max_calibration=max_calibration
    )
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "model": report.model,
                    "folder": str(report.folder),
                    "file": report.file if report.kept else None,
                    "gate_split": report.gate_split,
                    "n_gate": report.n_gate,
                    "n_calibration": report.n_calibration,
                    "auc_fp32": report.auc_fp32,
                    "auc_int8": report.auc_int8,
                    "ms_fp32": report.ms_fp32,
                    "ms_int8": report.ms_int8,
                    "max_auc_drop": report.max_auc_drop,
                    "kept": report.kept,
                    "reason": report.reason,
                },
                default=str,
            )
        )
        return
    out.print(
        f"{report.model}: {report.gate_split} AUC fp32 {report.auc_fp32:.4f}, "
        f"int8 {report.auc_int8:.4f} (n={report.n_gate}); "
        f"latency fp32 {report.ms_fp32:.2f} ms, int8 {report.ms_int8:.2f} ms "
        f"(one image, one thread; calibrated on {report.n_calibration})"
    )
    verdict = f"kept {report.folder / report.file}" if report.kept else "not kept"
    out.print(f"int8 {verdict}: {report.reason}", soft_wrap=True)
