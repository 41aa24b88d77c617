"""``radlens learn NAME --cases DIR [--cases DIR2] -o OUT``: needs the ``radlens[train]`` extra.

Fine-tunes the model's active version from adjudicated feedback cases (folders written by
``radlens feedback export``) plus a replay of its original training data, with the code
of ``radlens train``; writes the candidate to ``OUT`` (model, card, ``learn.log``, the gate's
``gate.md`` / ``gate.json``), stores it as the model's next version in the site store and
prints the gate's verdict. Nothing changes what analysis uses until an admin runs
``radlens models promote`` (or the site's ``auto_promote`` policy promotes a version that
passed). See ``docs/learning.md``.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from radlens.cli.analyze import ModelsDir
from radlens.cli.models import ConfigOption, DbOption, HomeOption, audit_hook, site_key_of
from radlens.cli.render import out
from radlens.cli.train import parse_sets
from radlens.errors import ConfigError
from radlens.models.registry import discover, get_model
from radlens.models.versions import active_model


def learn_command(
    name: Annotated[str, typer.Argument(help="model name (radlens models)")],
    cases: Annotated[
        list[Path],
        typer.Option("--cases", help="feedback export folder with cases.csv (repeat for several)"),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="candidate folder to write")],
    recipe: Annotated[
        Path | None, typer.Option(help="the model's recipe (default: its card's recipe)")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="its training data (default: the recipe's data)")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="schedule.epochs (default 2)")] = None,
    lr: Annotated[
        float | None, typer.Option(help="schedule.lr (default: the recipe's x 0.2)")
    ] = None,
    sets: Annotated[
        list[str] | None, typer.Option("--set", help="override a recipe value: section.key=value")
    ] = None,
    tune: Annotated[
        float, typer.Option(help="share of the cases' patients for epoch choice and calibration")
    ] = 0.25,
    heldback: Annotated[
        float, typer.Option(help="share of the cases' patients held back for the gate")
    ] = 0.25,
    case_share: Annotated[
        float, typer.Option(help="share of each epoch's items that are cases (repeated)")
    ] = 0.3,
    replay_items: Annotated[
        int, typer.Option(help="replayed items of the original train split (0 = all)")
    ] = 2000,
    locked_fraction: Annotated[
        float,
        typer.Option(help="share of val patients locked, when the locked set is recorded now"),
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="seed of the splits, the replay sample, training")] = 0,
    models_dir: ModelsDir = None,
    home: HomeOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Fine-tune a model from feedback, gate it and store it as a new version."""
    try:
        from radlens.evaluation.gate import GateMargins
        from radlens.training.learn import LearnOptions, learn, learn_recipe
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"learning needs torch and monai: pip install 'radlens[train]' ({exc.name} is missing)"
        ) from exc
    from radlens.config import load_settings

    settings = load_settings(home=home, db=db, config_file=config)
    store = settings.model_store_dir
    parent = active_model(store, get_model(name, discover(models_dir, include_disabled=True)))
    overrides: dict[str, Any] = {}
    if epochs is not None:
        overrides["schedule.epochs"] = epochs
    if lr is not None:
        overrides["schedule.lr"] = lr
    overrides.update(parse_sets(sets or []))
    chosen = learn_recipe(recipe or Path(parent.card.training.recipe), overrides)
    options = LearnOptions(
        case_share=case_share,
        replay_items=replay_items or None,
        tune=tune,
        heldback=heldback,
        locked_fraction=locked_fraction,
        seed=seed,
    )
    margins = GateMargins(settings.gate_auc_margin, settings.gate_ece_margin)
    result = learn(
        parent,
        chosen,
        cases,
        output,
        store,
        site_key_of(settings),
        options=options,
        margins=margins,
        data_path=data,
        command=_command(name, cases, output, recipe, data, overrides, options),
        auto_promote=settings.auto_promote,
        promoted_by="site policy (auto_promote)",
        on_change=audit_hook(settings),
    )
    report = result.report
    out.print(
        f"{name} {result.card.version} (version {result.version.number}, from "
        f"{parent.card.version}) -> {result.version.folder}: gate "
        + ("passed" if report.passed else "FAILED"),
        highlight=False,
        soft_wrap=True,
    )
    for check in report.checks:
        out.print(
            f"  {check.name}: {'pass' if check.passed else 'FAIL'}, {check.detail}",
            highlight=False,
            soft_wrap=True,
        )
    if result.promotion is not None:
        out.print(f"promoted by site policy: {result.promotion.describe()}", highlight=False)
    elif report.passed:
        out.print(
            f"not active yet: radlens models promote {name} {result.version.number}",
            highlight=False,
        )


def _command(
    name: str,
    cases: list[Path],
    output: Path,
    recipe: Path | None,
    data: Path | None,
    overrides: dict[str, Any],
    options: Any,
) -> str:
    """The command line that reproduces this run, for the card."""
    words = ["radlens", "learn", name]
    for folder in cases:
        words += ["--cases", str(folder)]
    for flag, value in (("--recipe", recipe), ("--data", data)):
        if value is not None:
            words += [flag, str(value)]
    for key, value in overrides.items():
        words += ["--set", f"{key}={value}"]
    for field in ("tune", "heldback", "case_share", "replay_items", "locked_fraction", "seed"):
        words += [f"--{field.replace('_', '-')}", str(getattr(options, field) or 0)]
    return shlex.join([*words, "-o", str(output)])
