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
    all_models: Annotated[
        bool, typer.Option("--all", help="include models disabled by default")
    ] = False,
) -> None:
    """List installed models (hash-verified)."""
    models = discover(models_dir, include_disabled=all_models)
    if as_json:
        out.print_json(
            json.dumps([card_to_dict(m.card) | {"folder": str(m.folder)} for m in models])
        )
        return
    table = Table(title="installed models")
    for col in ("name", "version", "task", "applies to", "population", "val metrics", "licence"):
        table.add_column(col, overflow="fold")
    for m in models:
        a, val = m.card.applies_to, m.card.metrics.get("val", {})
        table.add_row(
            m.card.name,
            m.card.version,
            m.card.task.value,
            f"{'/'.join(a.modalities)} {'/'.join(a.body_parts) or 'any'} "
            f"{'/'.join(a.views)} {a.dims}D",
            a.population.description or "-",
            ", ".join(f"{k.upper()} {val[k]:.3f}" for k in ("auc", "acc", "ece") if k in val)
            + f" (n={int(val.get('n', 0))})",
            m.card.training.licence,
        )
    out.print(table)
