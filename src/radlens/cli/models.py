"""``radlens models``: installed models, what they apply to, their validation metrics."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from radlens.cli.analyze import Json, ModelsDir
from radlens.cli.render import out
from radlens.models.card import card_to_dict
from radlens.models.registry import discover


def models_command(
    as_json: Json = False,
    models_dir: ModelsDir = None,
    enabled_only: Annotated[
        bool, typer.Option("--enabled", help="only models that analyze studies by default")
    ] = False,
) -> None:
    """List installed models (hash-verified), also those disabled by default."""
    models = discover(models_dir, include_disabled=not enabled_only)
    if as_json:
        out.print_json(
            json.dumps([card_to_dict(m.card) | {"folder": str(m.folder)} for m in models])
        )
        return
    table = Table(title="installed models (--json for cards: licence, population, thresholds)")
    for col in ("name", "version", "task", "applies to", "val AUC / ACC / ECE (n)", "enabled"):
        table.add_column(col, overflow="fold", no_wrap=col in ("name", "version"))
    for m in models:
        a, val = m.card.applies_to, m.card.metrics.get("val", {})
        figures = " / ".join(f"{val[k]:.3f}" if k in val else "-" for k in ("auc", "acc", "ece"))
        if "map50" in val:  # a detector: VOC mAP instead
            figures = f"mAP@0.5 {val['map50']:.3f}"
        table.add_row(
            m.card.name,
            m.card.version,
            m.card.task.value,
            f"{'/'.join(a.modalities)} {'/'.join(a.body_parts) or 'any'} "
            f"{'/'.join(a.views)} {a.dims}D".replace("  ", " "),
            f"{figures} ({int(val.get('n', 0))})",
            "yes" if m.card.enabled_by_default else "no",
        )
    out.print(table)
