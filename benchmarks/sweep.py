"""Run one training experiment for the record and append it to benchmarks/experiments.jsonl.

Example::

    .venv/bin/python benchmarks/sweep.py recipes/breast_us_malignancy.toml --variant stem3 \\
        --note "3x3 stride-1 stem, no max-pool: keeps 28 px detail" \\
        --set net.stem_kernel=3 --set net.stem_stride=1 --set net.max_pool=false

runs ``radlens train RECIPE -o /tmp/radlens-sweep/<recipe stem>/<variant> --set ...`` (so this
script needs no torch), reads the ``card.json`` it wrote and appends one JSON line: date,
recipe, dataset (the recipe's name), variant, note, sets, seed, val metrics, minutes, out_dir
and whether the variant shipped (``--ship``). ``--dry-run`` prints the command only.
``--from-dir DIR`` records a model already trained with ``radlens train`` instead of training
one: its card must be the recipe's, and the sets and seed are read from the command the card
records (so the record says what was really run).
``make bench-models`` renders the lines into the Experiments section of benchmarks/models.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from radlens.cli.train import parse_sets

HERE = Path(__file__).parent
REPO = HERE.parent
SWEEP_ROOT = Path("/tmp/radlens-sweep")
VAL_METRICS = ("auc", "acc", "ece", "qwk", "mae", "map50", "map50_95")


def radlens_command() -> str:
    """The ``radlens`` beside this Python (the venv's), else the repo's venv, else PATH."""
    for candidate in (Path(sys.executable).with_name("radlens"), REPO / ".venv/bin/radlens"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("radlens") or "radlens"


def recipe_name(recipe: Path) -> str:
    """The ``name`` a recipe gives its model (the dataset key of an experiment)."""
    data = tomllib.loads(recipe.read_text(encoding="utf-8"))
    return str(data.get("name", recipe.stem))


def repo_relative(path: Path) -> Path:
    """``path`` relative to the repository root when inside it (training runs from there)."""
    try:
        return path.resolve().relative_to(REPO.resolve())
    except ValueError:
        return path.resolve()


def out_dir_for(recipe: Path, variant: str, root: Path = SWEEP_ROOT) -> Path:
    return root / recipe.stem / variant


def build_command(
    radlens: str,
    recipe: Path,
    out_dir: Path,
    sets: list[str],
    seed: int | None = None,
    epochs: int | None = None,
) -> list[str]:
    """The ``radlens train`` command line for one experiment."""
    command = [radlens, "train", str(recipe), "-o", str(out_dir)]
    for pair in sets:
        command += ["--set", pair]
    if seed is not None:
        command += ["--seed", str(seed)]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    return command


def experiment_record(
    card: dict[str, Any],
    *,
    recipe: str,
    dataset: str,
    variant: str,
    note: str,
    sets: dict[str, Any],
    out_dir: Path,
    shipped: bool,
    wall_min: float | None = None,
    date: str | None = None,
) -> dict[str, Any]:
    """One line of experiments.jsonl from the card a run wrote.

    The seed is the one the card records (the recipe's unless ``--seed`` overrode it);
    minutes are the card's ``training.duration_min``, else the wall time of the run.
    """
    training = card.get("training", {})
    val = card.get("metrics", {}).get("val", {})
    minutes = training.get("duration_min")
    if minutes is None and wall_min is not None:
        minutes = round(wall_min, 1)
    return {
        "date": date or time.strftime("%Y-%m-%d"),
        "recipe": recipe,
        "dataset": dataset,
        "variant": variant,
        "note": note,
        "sets": sets,
        "seed": training.get("seed"),
        "val": {k: round(float(val[k]), 4) for k in VAL_METRICS if k in val},
        "minutes": minutes,
        "out_dir": str(out_dir),
        "shipped": shipped,
    }


def append_record(log: Path, record: dict[str, Any]) -> None:
    with log.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=False) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path, help="recipes/<name>.toml")
    parser.add_argument("--variant", required=True, help="a short name, e.g. stem3 or mixup")
    parser.add_argument("--note", required=True, help="what changed and why (the literature)")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], help="section.key=value (TOML value)"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--ship", action="store_true", help="record that this variant shipped")
    parser.add_argument("--dry-run", action="store_true", help="print the command and stop")
    parser.add_argument("--force", action="store_true", help="retrain over an existing out dir")
    parser.add_argument("--root", type=Path, default=SWEEP_ROOT, help="where runs are written")
    parser.add_argument("--log", type=Path, default=HERE / "experiments.jsonl")
    parser.add_argument("--radlens", default=None, help="the radlens executable to call")
    parser.add_argument(
        "--from-dir", type=Path, default=None, help="record this trained model folder instead"
    )
    return parser.parse_args(argv)


def recorded_sets(card: dict[str, Any]) -> dict[str, Any]:
    """The ``--set`` values (and ``--seed``, ``--epochs``) of the command a card records."""
    words = shlex.split(card.get("training", {}).get("command", ""))
    pairs = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--set"]
    sets = parse_sets(pairs)
    for flag, key in (("--epochs", "schedule.epochs"), ("--seed", "seed")):
        if flag in words[:-1]:
            sets[key] = int(words[words.index(flag) + 1])
    return sets


def record_trained(args: argparse.Namespace) -> int:
    """``--from-dir``: append the record of a model trained outside this script."""
    card_path = args.from_dir / "card.json"
    if not card_path.is_file():
        print(f"{args.from_dir}: no card.json (not a trained model folder)")
        return 2
    card = json.loads(card_path.read_text(encoding="utf-8"))
    if card.get("name") != recipe_name(args.recipe):
        print(f"{args.from_dir}: a {card.get('name')!r} model, not {recipe_name(args.recipe)!r}")
        return 2
    return record(args, card, recorded_sets(card), args.from_dir)


def record(
    args: argparse.Namespace,
    card: dict[str, Any],
    sets: dict[str, Any],
    out_dir: Path,
    wall_min: float | None = None,
) -> int:
    """Append the experiment ``args`` describe, trained into ``out_dir``, to the log."""
    line = experiment_record(
        card,
        recipe=str(repo_relative(args.recipe)),
        dataset=recipe_name(args.recipe),
        variant=args.variant,
        note=args.note,
        sets=sets,
        out_dir=out_dir,
        shipped=args.ship,
        wall_min=wall_min,
    )
    append_record(args.log, line)
    print(f"recorded in {args.log}: {json.dumps(line['val'])}, {line['minutes']} min")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.variant or "/" in args.variant or args.variant.startswith("."):
        print(f"--variant {args.variant!r}: use a plain name (it becomes a folder)")
        return 2
    if not args.recipe.exists():
        print(f"{args.recipe}: no such recipe")
        return 2
    if args.from_dir is not None:
        return record_trained(args)
    sets = parse_sets(args.sets)  # fail on a malformed --set before training
    out_dir = out_dir_for(args.recipe, args.variant, args.root)
    command = build_command(
        args.radlens or radlens_command(),
        repo_relative(args.recipe),
        out_dir,
        args.sets,
        args.seed,
        args.epochs,
    )
    print(shlex.join(command))
    if args.dry_run:
        return 0
    if (out_dir / "card.json").exists() and not args.force:
        print(f"{out_dir} already holds a trained model; pick another --variant or pass --force")
        return 2
    start = time.perf_counter()
    # From the repository root: recipes name their data relative to it (../shared/data).
    done = subprocess.run(command, cwd=REPO, check=False)
    wall_min = (time.perf_counter() - start) / 60
    if done.returncode != 0:
        print(f"training failed (exit {done.returncode}); nothing recorded")
        return done.returncode
    card = json.loads((out_dir / "card.json").read_text(encoding="utf-8"))
    return record(args, card, sets, out_dir, wall_min)


if __name__ == "__main__":
    raise SystemExit(main())
