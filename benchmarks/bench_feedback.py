"""Learning from a new site's radiologists, under the evaluation gate (issue 9).

Simulates a site whose images differ from the training data and runs the change-control
loop of ``docs/learning.md`` end to end with the real commands:

1. ``radlens models lock MODEL --fraction F``: the locked evaluation set, a patient-grouped
   share of the recipe's ``val`` split (never trained on).
2. The rest of ``val`` (other patients) is the *new site*: every image gets the site's
   acquisition shift (:func:`site_shift`), and the site's patients are split into a
   *feedback* part and the *rest* (by patient, seeded).
3. Reader feedback for the feedback part is written as a ``radlens feedback export`` folder
   (``cases.csv`` + PNG files, the site's patient pseudonyms): the ground-truth label, with
   a stated share flipped at random (label noise); and a second, *harmful* export with
   every label flipped.
4. ``radlens learn MODEL --cases EXPORT --seed S`` for each export and seed (one thread,
   ``nice``); its gate report. The seed sets the split of the cases into train / tune /
   held back, the replay sample and the training's randomness.
5. AUC on the rest of the shifted site and on the locked set, before (the installed model)
   and after (each candidate), with paired bootstrap intervals of the differences; then
   ``radlens models promote`` of a site version and of a harmful one (which must be
   refused) and a rollback.

Only train and val data are used (``../shared/data`` holds no test split). Goals: shifted-
site AUC up by >= 0.05 with locked-set AUC down by <= 0.005; the gate refuses the harmful
update.

    python benchmarks/bench_feedback.py            # 10 learn runs, ~15 min on 2 shared cores

Writes benchmarks/feedback.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageFilter, ImageOps

from radlens.config import Settings
from radlens.evaluation import metrics as m
from radlens.evaluation.evaluate import evaluate
from radlens.evaluation.gate import dataset_patient_ids, group_share, read_locked
from radlens.inference.backends import OnnxBackend
from radlens.io.datasets import LabelledImages, read_labelled
from radlens.models.card import ModelCard
from radlens.models.registry import load_model, zoo_folder
from radlens.privacy.deid import DeidState
from radlens.store.research import RESEARCH_KEY_FILE, research_key

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data" / "cxr_pneumonia"
SITE_SECRET = hashlib.sha256(b"radlens bench_feedback: the simulated site's research key").digest()

SHIFT = (
    "another site's unit and processing: wider collimation (the image shrunk to 70% inside a "
    "black surround), the vendor's histogram equalization and strong unsharp masking "
    "(radius 8 px, 250%), applied in that order at the source resolution (224 px) and "
    "stored as 8-bit PNG"
)


def site_shift(image: np.ndarray, seed: int = 0) -> np.ndarray:
    """The new site's acquisition shift (see :data:`SHIFT`); deterministic (``seed`` unused)."""
    x = np.asarray(image, np.uint8)
    h, w = x.shape[:2]
    small = PILImage.fromarray(x).resize(
        (round(w * 0.7), round(h * 0.7)), PILImage.Resampling.BILINEAR
    )
    framed = PILImage.new(small.mode, (w, h), 0)
    framed.paste(small, ((w - small.width) // 2, (h - small.height) // 2))
    processed = ImageOps.equalize(framed).filter(
        ImageFilter.UnsharpMask(radius=8, percent=250, threshold=0)
    )
    return np.asarray(processed, np.uint8)


def subset(data: LabelledImages, rows: list[int], split: str) -> LabelledImages:
    return replace(
        data,
        images=[data.images[i] for i in rows],
        labels=data.labels[rows],
        ids=tuple(data.ids[i] for i in rows),
        split=split,
    )


def write_export(folder: Path, data: LabelledImages, keys: list[str], labels: np.ndarray) -> None:
    """A folder as ``radlens feedback export`` writes it: cases.csv + de-identified PNGs."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "images").mkdir(parents=True)
    with (folder / "cases.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "file",
                "label",
                "site",
                "scanner",
                "patient_key",
                "n_readers",
                "agreement",
                "study_key",
                "finding_id",
            ]
        )
        for i, (image, key, label) in enumerate(zip(data.images, keys, labels, strict=True)):
            name = f"images/case{i:04d}.png"
            PILImage.fromarray(image).save(folder / name)
            writer.writerow([name, int(label), "site-B", "bedside-unit", key, 1, 1.0, "", ""])


def auc_of(card: ModelCard, weights: Path, data: LabelledImages) -> tuple[float, np.ndarray]:
    """AUC and the positive-class probabilities (for paired bootstraps)."""
    ev = evaluate(card, OnnxBackend(weights, threads=1), data)
    return float(ev.metrics["auc"]), ev.probs[:, card.positive_index]


def paired_bootstrap(
    y: np.ndarray, before: np.ndarray, after: np.ndarray, positive: int, draws: int = 2000
) -> tuple[float, float]:
    """95% interval of AUC(after) - AUC(before), items resampled with replacement."""
    rng = np.random.default_rng(0)
    target = (y == positive).astype(int)
    diffs = []
    for _ in range(draws):
        idx = rng.integers(0, len(y), len(y))
        if target[idx].min() == target[idx].max():
            continue
        diffs.append(m.auc_binary(target[idx], after[idx]) - m.auc_binary(target[idx], before[idx]))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)


def radlens(*args: str, log: Path, nice: bool = False) -> tuple[int, float, str]:
    """Run the radlens CLI as a user would; returns exit code, seconds and output."""
    command = [sys.executable, "-m", "radlens", *args]
    if nice:
        command = ["nice", "-n", "10", *command]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    seconds = time.perf_counter() - started
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"$ radlens {' '.join(args)}\n{done.stdout}{done.stderr}\n")
    return done.returncode, seconds, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="cxr_pneumonia_128")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=Path("/tmp/radlens-bench-feedback"))
    parser.add_argument("--locked-fraction", type=float, default=0.4)
    parser.add_argument("--feedback-share", type=float, default=0.6)
    parser.add_argument("--label-noise", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--learn-args", default="--set schedule.threads=1")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite feedback.md from feedback.json"
    )
    args = parser.parse_args()
    if args.report_only:
        result = json.loads((HERE / "feedback.json").read_text("utf-8"))
        (HERE / "feedback.md").write_text(markdown(result), "utf-8")
        return

    work = args.work
    if work.exists():
        shutil.rmtree(work)
    home = work / "home"
    settings = Settings(home=home)
    # The site's research key (patient pseudonyms), fixed so reruns split cases the same way.
    settings.storage_dir.mkdir(parents=True)
    (settings.storage_dir / RESEARCH_KEY_FILE).write_bytes(SITE_SECRET)
    log = work / "commands.log"
    installed = load_model(zoo_folder() / args.model)
    card = installed.card
    home_flag = ["--home", str(home)]

    # 1. the locked set
    code, _, text = radlens(
        "models", "lock", args.model, "--data", str(args.data),
        "--fraction", str(args.locked_fraction), *home_flag, log=log,
    )  # fmt: skip
    assert code == 0, text
    locked = read_locked(settings.model_store_dir / args.model / "locked.json")
    val = read_labelled(args.data, "val", card.labels)
    index = {name: i for i, name in enumerate(val.ids)}
    locked_data = subset(val, [index[f] for f in locked.files], "locked")

    # 2. the new site: the other val patients, shifted; feedback part and the rest
    patients = dataset_patient_ids(args.data, val.ids)
    # patient_key as radlens feedback export writes it (cli.models.site_key_of)
    pseudonyms = DeidState(research_key(settings.storage_dir))
    keys = [pseudonyms.pseudonym("", p) if p else "" for p in patients]
    locked_keys = set(locked.patient_keys)
    site_rows = [i for i in range(len(val)) if keys[i] not in locked_keys]
    shifted = replace(val, images=[site_shift(im, i) for i, im in enumerate(val.images)])
    feedback_rows = [i for i in site_rows if group_share(patients[i], 1) < args.feedback_share]
    rest_rows = [i for i in site_rows if i not in set(feedback_rows)]
    feedback = subset(shifted, feedback_rows, "site-feedback")
    rest = subset(shifted, rest_rows, "site-rest")
    rest_clean = subset(val, rest_rows, "site-rest-clean")
    feedback_keys = [keys[i] for i in feedback_rows]

    # 3. reader feedback: ground truth with label noise, and a harmful export
    rng = np.random.default_rng(7)
    noisy = feedback.labels.copy()
    flip = rng.random(len(noisy)) < args.label_noise
    noisy[flip] = 1 - noisy[flip]
    write_export(work / "export-site", feedback, feedback_keys, noisy)
    write_export(work / "export-flipped", feedback, feedback_keys, 1 - feedback.labels)

    # before
    positive = card.positive_index
    before = {
        "rest_clean": auc_of(card, installed.weights, rest_clean),
        "rest": auc_of(card, installed.weights, rest),
        "locked": auc_of(card, installed.weights, locked_data),
    }

    # 4. radlens learn from each export, once per seed (case split, replay sample, training)
    def learn(export: str, seed: int) -> dict[str, Any]:
        out_dir = work / f"candidate-{export}-seed{seed}"
        code, seconds, text = radlens(
            "learn", args.model, "--cases", str(work / export), "-o", str(out_dir),
            "--data", str(args.data), "--seed", str(seed), *args.learn_args.split(),
            *home_flag, log=log, nice=True,
        )  # fmt: skip
        assert code == 0, text
        gate = json.loads((out_dir / "gate.json").read_text())
        lineage = json.loads((out_dir / "version.json").read_text())
        learned = load_model(out_dir)
        after = {
            "rest": auc_of(learned.card, learned.weights, rest),
            "locked": auc_of(learned.card, learned.weights, locked_data),
        }
        return {
            "seed": seed,
            "version": lineage["number"],
            "card_version": learned.card.version,
            "learn_minutes": round(seconds / 60, 1),
            "counts": lineage["counts"],
            "gate_passed": gate["passed"],
            "gate_checks": gate["checks"],
            "gate_figures": gate["figures"],
            "auc_rest_after": round(after["rest"][0], 4),
            "auc_locked_after": round(after["locked"][0], 4),
            "rest_diff_ci95": paired_bootstrap(
                rest.labels, before["rest"][1], after["rest"][1], positive
            ),
            "locked_diff_ci95": paired_bootstrap(
                locked_data.labels, before["locked"][1], after["locked"][1], positive
            ),
        }

    runs: dict[str, list[dict[str, Any]]] = {"site feedback": [], "flipped labels": []}
    for seed in args.seeds:
        runs["site feedback"].append(learn("export-site", seed))
        runs["flipped labels"].append(learn("export-flipped", seed))

    # 5. change control: promote a version that passed and a harmful one, then roll back
    control = []
    passed = [r for r in runs["site feedback"] if r["gate_passed"]]
    for label, run in (
        ("site feedback", (passed or runs["site feedback"])[0]),
        ("flipped labels", runs["flipped labels"][0]),
    ):
        number = str(run["version"])
        code, _, text = radlens("models", "promote", args.model, number, *home_flag, log=log)
        control.append({"step": f"promote {number} ({label})", "exit": code, "said": text.strip()})
    code, _, text = radlens("models", "rollback", args.model, *home_flag, log=log)
    control.append({"step": "rollback", "exit": code, "said": text.strip()})

    result = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), {platform.system()}",
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
        "model": f"{args.model} {card.version}",
        "data": str(args.data),
        "shift": SHIFT,
        "label_noise": args.label_noise,
        "labels_flipped_by_noise": int(flip.sum()),
        "learn_args": args.learn_args,
        "seeds": args.seeds,
        "n": {
            "val": len(val),
            "locked": len(locked_data),
            "site_feedback": len(feedback),
            "site_rest": len(rest),
            "locked_patients": len(locked_keys - {""}),
        },
        "locked_sha256": locked.sha256,
        "auc_before": {k: round(v[0], 4) for k, v in before.items()},
        "runs": runs,
        "change_control": control,
    }
    result["goals"] = goals(result)
    (HERE / "feedback.json").write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    (HERE / "feedback.md").write_text(markdown(result), "utf-8")
    print(markdown(result))


def goals(result: dict[str, Any]) -> dict[str, Any]:
    before = result["auc_before"]
    good, bad = result["runs"]["site feedback"], result["runs"]["flipped labels"]
    gains = [r["auc_rest_after"] - before["rest"] for r in good]
    drops = [before["locked"] - r["auc_locked_after"] for r in good]
    pairs = list(zip(gains, drops, strict=True))
    n = len(good)
    return {
        "site_auc_gain_mean": round(float(np.mean(gains)), 4),
        "site_auc_gain_min": round(float(np.min(gains)), 4),
        "site_auc_gain_met": f"{sum(g >= 0.05 for g in gains)}/{n}",
        "locked_auc_drop_mean": round(float(np.mean(drops)), 4),
        "locked_auc_drop_max": round(float(np.max(drops)), 4),
        "locked_auc_drop_met": f"{sum(d <= 0.005 for d in drops)}/{n}",
        "both_met": f"{sum(g >= 0.05 and d <= 0.005 for g, d in pairs)}/{n}",
        "good_update_passed_gate": f"{sum(r['gate_passed'] for r in good)}/{n}",
        "harmful_update_refused": f"{sum(not r['gate_passed'] for r in bad)}/{len(bad)}",
    }


def markdown(r: dict[str, Any]) -> str:
    g, before, n = r["goals"], r["auc_before"], r["n"]
    seeds = ", ".join(str(s) for s in r["seeds"])
    good, bad = r["runs"]["site feedback"], r["runs"]["flipped labels"]
    good_ece = [
        x["gate_figures"]["locked_candidate"]["ece"] - x["gate_figures"]["locked_current"]["ece"]
        for x in good
    ]
    ece_failed = sum(
        not c["passed"] for x in bad for c in x["gate_checks"] if c["name"] == "locked ECE"
    )
    feedback_auc = bad[0]["gate_figures"]["cases_current"]["auc"]
    lines = [
        "# Benchmark: learning from a new site's feedback under the evaluation gate (issue 9)",
        "",
        f"Measured on {r['machine']}, {r['date']}, commit {r['commit']} (plus the working tree "
        "of this change), by `benchmarks/bench_feedback.py`. Model "
        f"`{r['model']}`; data `{r['data']}` (train and val splits only; no test split is "
        "used or present).",
        "",
        "## Set-up",
        "",
        f"- **Locked evaluation set**: {n['locked']} images of {n['locked_patients']} patients, "
        "a patient-grouped 40% of the recipe's val split (`radlens models lock --fraction "
        f"0.4`), sha256 `{r['locked_sha256'][:16]}...`; unshifted; never trained on.",
        f"- **New site**: the other {n['site_feedback'] + n['site_rest']} val images (the "
        f"other patients), all with the site's acquisition shift: {r['shift']}.",
        f"- **Reader feedback**: {n['site_feedback']} site images (60% of the site's patients, "
        f"seeded) with their ground-truth label and {r['label_noise']:.0%} label noise "
        f"({r['labels_flipped_by_noise']} labels flipped at random), written as a feedback "
        "export (`cases.csv`, PNG, the site's patient pseudonym). The *harmful* export holds "
        "the same images with every label flipped.",
        f"- **Rest of the site**: {n['site_rest']} images of the other site patients, never "
        "seen by `radlens learn`.",
        "- `radlens learn` with its defaults (2 epochs, learning rate 0.2 x the recipe's, "
        "cases 30% of each epoch, 2000 replayed train images and 200 more for calibration, "
        "cases split by patient 50% train / 25% tune / 25% held back) and "
        f"`{r['learn_args']}`, under `nice -n 10`, once per seed ({seeds}): the seed sets "
        "the split of the cases, the replay sample and the training's randomness.",
        "",
        "## Results",
        "",
        f"Installed model: AUC on the rest of the site **{before['rest']:.4f}** shifted "
        f"({before['rest_clean']:.4f} on the same images unshifted); on the locked set "
        f"**{before['locked']:.4f}**.",
        "",
        "| export | seed | gate | AUC rest of site | change [95% CI] | AUC locked set | "
        "change [95% CI] | locked ECE change | learn time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, runs in r["runs"].items():
        for run in runs:
            f = run["gate_figures"]
            ece = f["locked_candidate"]["ece"] - f["locked_current"]["ece"]
            lines.append(
                f"| {label} | {run['seed']} | {'passed' if run['gate_passed'] else 'REFUSED'} | "
                f"{run['auc_rest_after']:.4f} | {run['auc_rest_after'] - before['rest']:+.4f} "
                f"{run['rest_diff_ci95']} | {run['auc_locked_after']:.4f} | "
                f"{run['auc_locked_after'] - before['locked']:+.4f} {run['locked_diff_ci95']} | "
                f"{ece:+.4f} | {run['learn_minutes']} min |"
            )
    lines += [
        "",
        "Goals, over the seeds:",
        "",
        f"- shifted-site AUC up by >= 0.05: met in **{g['site_auc_gain_met']}** (mean "
        f"{g['site_auc_gain_mean']:+.4f}, smallest {g['site_auc_gain_min']:+.4f});",
        f"- locked-set AUC down by <= 0.005: met in **{g['locked_auc_drop_met']}** (mean "
        f"{-g['locked_auc_drop_mean']:+.4f}, worst {-g['locked_auc_drop_max']:+.4f}); both "
        f"goals together: **{g['both_met']}**;",
        f"- the gate passed the site update in **{g['good_update_passed_gate']}** and refused "
        f"the harmful update in **{g['harmful_update_refused']}**.",
        "",
        "## The gate's checks",
        "",
        "| export | seed | check | result | detail |",
        "|---|---|---|---|---|",
    ]
    for label, runs in r["runs"].items():
        for run in runs:
            for check in run["gate_checks"]:
                lines.append(
                    f"| {label} | {run['seed']} | {check['name']} | "
                    f"{'pass' if check['passed'] else 'FAIL'} | {check['detail']} |"
                )
    lines += [
        "",
        "Reading the checks: the installed model's locked-set figures are in-sample (it chose "
        "its epoch and calibration on the val split), so the comparison leans against "
        "candidates. The held-back cases carry the readers' labels, so the harmful update's "
        "held-back labels are flipped too and it 'improves' there; and it learns the "
        "flipped labels for the shifted images alone, so the locked-set AUC barely moves. "
        f"Its locked-set ECE rose beyond the margin in {ece_failed} of {len(bad)} seeds; "
        "that is not to be relied on (in a development run with 4 epochs, on another case "
        "split, the harmful update passed every locked-set check, AUC 0.9882 vs 0.9892 and "
        "ECE 0.0207 vs 0.0275, while its AUC on the rest of the site fell to 0.0152). The "
        "check that refuses it every time is the installed model's AUC against the "
        f"feedback labels ({feedback_auc:.4f}, below chance). With about 200 locked images, "
        "ECE changes of 0.01 are within the noise (paired bootstrap SD of the ECE difference "
        "measured at 0.008-0.011 during development): the site updates above passed with "
        f"ECE changes up to {max(good_ece):+.4f}, close to the margin, and a benign update "
        "can fail it by chance; their worst locked-set AUC change was "
        f"{min(r['auc_locked_after'] for r in good) - before['locked']:+.4f}.",
        "",
        "## Change control afterwards",
        "",
        "| step | exit code | radlens said |",
        "|---|---|---|",
        *(
            f"| {c['step']} | {c['exit']} | {c['said'].splitlines()[-1] if c['said'] else ''} |"
            for c in r["change_control"]
        ),
        "",
        "## How the defaults were chosen",
        "",
        "Development runs on the same data and shift, with other (random) site keys and so "
        "other case splits, one seed each. With 4 epochs and cases at 30% of each epoch, "
        "the site update failed the locked-ECE check on one split (+0.0255) and passed on "
        "another (-0.0007); with cases at 15% it passed on the first (-0.0018) and failed on "
        "the second (+0.0125). 2 epochs at 30% passed on both (+0.0063, +0.0046; site AUC "
        "0.9752 and 0.9813, locked AUC 0.9867 and 0.9887) and became the default, a short "
        "fine-tune that stays near the validated model. The seeds above were run after that "
        "choice.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
