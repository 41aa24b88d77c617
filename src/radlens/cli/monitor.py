"""``radlens monitor [--model NAME] [--since WHEN]``: how each model version behaves in use,
per site and scanner, with drift alerts (``radlens.feedback.monitor``; docs/feedback.md).

``--since`` takes a date or time (``2025-03-01``, ``2025-03-01T08:00``, UTC) or a span back
from now (``7d``, ``12h``). ``--json`` prints the same document as ``GET /api/monitoring``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from radlens.cli.render import out
from radlens.errors import ConfigError

if TYPE_CHECKING:
    from radlens.feedback.monitor import GroupStats, MonitoringReport

HomeOption = Annotated[Path | None, typer.Option(help="data folder (default ~/.radlens)")]
DbOption = Annotated[str | None, typer.Option(help="database URL (default: SQLite in home)")]
ConfigOption = Annotated[Path | None, typer.Option(help="TOML settings file")]
_SPAN = re.compile(r"^(\d+)\s*([dh])$")


def monitor_command(
    model: Annotated[str, typer.Option(help="one model's name (default: all)")] = "",
    since: Annotated[
        str | None, typer.Option(help="studies analyzed since: a date/time (UTC) or 7d, 12h")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    home: HomeOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Volume, positive rate, reader agreement, calibration and OOD drift per model version
    and site/scanner."""
    from radlens.config import load_settings
    from radlens.feedback.views import monitoring, policy_of
    from radlens.server.app import encryption_keys
    from radlens.store.db import open_database

    start = parse_since(since)
    settings = load_settings(home=home, db=db, config_file=config)
    policy = policy_of(
        settings.adjudication_rule,
        settings.senior_readers,
        settings.drift_psi_alert,
        settings.drift_min_images,
    )
    database = open_database(settings.database_url, keys=encryption_keys(settings))
    try:
        report = monitoring(
            database,
            settings.storage_dir,
            settings.card_folders,
            policy,
            model,
            start,
        )
    finally:
        database.close()
    if as_json:
        from radlens.feedback.monitor import HISTOGRAM_EDGES
        from radlens.server.schemas import MonitoringPublic

        typer.echo(MonitoringPublic.of(report, HISTOGRAM_EDGES).model_dump_json(indent=1))
        return
    out.print(render(report), highlight=False, soft_wrap=True)


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``--since``: an ISO date or time (UTC), or ``<n>d`` / ``<n>h`` back from now.

    Raises:
        ConfigError: neither.

    Example:
        >>> parse_since("2d", datetime(2025, 3, 5))
        datetime.datetime(2025, 3, 3, 0, 0)
    """
    if not text:
        return None
    now = now or datetime.now(UTC).replace(tzinfo=None)
    if match := _SPAN.match(text.strip()):
        n, unit = int(match[1]), match[2]
        return now - (timedelta(days=n) if unit == "d" else timedelta(hours=n))
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ConfigError(f"--since {text!r}: use a date (2025-03-01), a time or 7d / 12h") from exc
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def render(report: MonitoringReport) -> str:
    """The text summary ``radlens monitor`` prints."""
    since = f" since {report.since:%Y-%m-%d %H:%M} UTC" if report.since else ""
    lines = [f"radlens monitoring{since}: {len(report.models)} model version(s)"]
    if not report.models:
        lines.append("  no analyzed study has findings yet")
    for m in report.models:
        lines.append("")
        card = "" if m.card_found else " (card not installed: no drift test)"
        lines.append(f"{m.model_name} {m.model_version}{card}")
        lines.extend(f"  {line}" for line in _group_lines(m.stats))
        if m.strata:
            lines.append("  per site/scanner:")
            for s in m.strata:
                st = s.stats
                lines.append(
                    f"    {s.equipment.stratum}: {st.n_images} images, "
                    f"positive {_pct(st.positive_rate)}, flagged {_pct(st.ood.flag_rate)}, "
                    f"AI agreement {_pct(st.ai_agreement)}, {st.ood.drift.reason}"
                )
    lines.append("")
    if report.alerts:
        lines.append(f"ALERTS ({len(report.alerts)}):")
        lines.extend(f"  {alert}" for alert in report.alerts)
    else:
        lines.append("no alerts")
    return "\n".join(lines)


def _group_lines(st: GroupStats) -> list[str]:
    agreement = f"AI agreement {_pct(st.ai_agreement)} of {st.n_resolved} adjudicated"
    if st.n_multi_read:
        agreement += f"; readers agreed on {_pct(st.reader_agreement)} of {st.n_multi_read}"
    ece = "–" if st.ece is None else f"{st.ece:.3f}"
    expected = _pct(st.ood.expected_flag_rate)
    return [
        f"volume       {st.n_studies} studies, {st.n_images} images, {st.n_findings} findings",
        f"positive     {_pct(st.positive_rate)} ({st.n_positive})",
        f"reviewed     {st.n_reviewed} findings; {agreement}",
        f"calibration  ECE {ece} over {st.n_calibration} reviewed findings",
        f"OOD          {_pct(st.ood.flag_rate)} flagged (training {expected}); "
        f"{st.ood.drift.reason}",
    ]


def _pct(share: float | None) -> str:
    return "–" if share is None else f"{share:.1%}"
