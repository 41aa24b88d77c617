"""``radlens bundle -o DIR``: the wheelhouse an air-gapped machine installs radlens from
(``pip install --no-index --find-links DIR 'radlens[serve,demo]'``); see docs/edge.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from radlens.cli.render import out


def bundle_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="new (or empty) folder")],
    extras: Annotated[
        list[str] | None,
        typer.Option("--extra", help="extras to include (repeat; default: serve and demo)"),
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option(help="radlens source tree (default: the one this radlens runs from)"),
    ] = None,
    pin_installed: Annotated[
        bool,
        typer.Option(
            "--pin-installed/--latest",
            help="pin dependencies to the versions installed here, or take the newest "
            "that constraints.txt allows",
        ),
    ] = True,
    web: Annotated[
        bool,
        typer.Option("--web/--no-web", help="require the built web UI (make web)"),
    ] = True,
    verify: Annotated[
        bool, typer.Option("--verify", help="only check an existing bundle against its manifest")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print machine-readable JSON")] = False,
) -> None:
    """Write an offline bundle: radlens (models and web UI inside) and every run-time wheel."""
    from radlens.edge.bundle import DEFAULT_EXTRAS, build_bundle, verify_bundle

    def progress(step: str) -> None:
        if not as_json:
            out.print(f"[dim]{escape(step)}...[/dim]")

    if verify:
        bundle = verify_bundle(output)
    else:
        bundle = build_bundle(
            output,
            tuple(extras) if extras else DEFAULT_EXTRAS,
            source,
            pin_installed=pin_installed,
            require_web=web,
            progress=progress,
        )
    if as_json:
        doc = {
            "folder": str(bundle.folder),
            "radlens_wheel": bundle.radlens_wheel,
            "extras": list(bundle.extras),
            "python": bundle.python,
            "platform": bundle.platform,
            "models": list(bundle.models),
            "web_ui": bundle.web_ui,
            "wheels": len(bundle.wheels),
            "size_bytes": bundle.size_bytes,
            "install": bundle.install_command,
        }
        out.print_json(json.dumps(doc))
        return
    verb = "verified" if verify else "written"
    out.print(
        f"bundle {verb}: {escape(str(bundle.folder))} ({len(bundle.wheels)} wheels, "
        f"{bundle.size_bytes / 1e6:.0f} MB) for {bundle.python} on {bundle.platform}"
    )
    out.print(f"models: {escape(', '.join(bundle.models)) or 'none'}")
    out.print(f"install offline with: {escape(bundle.install_command)}")
