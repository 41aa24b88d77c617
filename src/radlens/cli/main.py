"""The ``radlens`` command: one module per subcommand, wired here in one visible list.

Exit codes (also in ``docs/cli.md``): 0 all input analyzed; 2 some input rejected (bad
file, wrong arguments); 1 internal error.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from radlens.errors import InputError, RadlensError
from radlens.privacy.logs import install_log_filters

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2

app = typer.Typer(
    help="radlens: an open, offline AI second reader for medical imaging. "
    "Every result is an AI draft that requires physician review.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])


def guarded(fn: F) -> F:
    """Turn radlens errors into one line and an exit code; never a traceback for bad input."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            err.print(f"[red]error[/red] {exc.kind}: {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(EXIT_INPUT) from None
        except RadlensError as exc:
            err.print("[red]error[/red]", escape(str(exc)), soft_wrap=True)
            raise typer.Exit(EXIT_INTERNAL) from None
        except (typer.Exit, KeyboardInterrupt):
            raise
        except Exception as exc:
            if logging.getLogger("radlens").isEnabledFor(logging.DEBUG):
                raise
            err.print(
                f"[red]internal error[/red] {type(exc).__name__}: {escape(str(exc))} "
                "(rerun with -v for the traceback)",
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper  # type: ignore[return-value]


def configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("radlens").setLevel(level)
    # pydicom logs offending element values, which may be patient data; radlens reports
    # each problem itself, once, without values.
    logging.getLogger("pydicom").setLevel(logging.DEBUG if verbose else logging.CRITICAL)
    install_log_filters()  # pydicom quotes invalid values, patient data included
    # highdicom logs the UIDs of the source images it copies from at INFO.
    logging.getLogger("highdicom").setLevel(logging.DEBUG if verbose else logging.WARNING)


def _register() -> None:
    from radlens.cli import (
        analyze,
        audit,
        batch,
        bundle,
        calibrate,
        data,
        deblur,
        deidentify,
        demo,
        denoise,
        evaluate,
        feedback,
        half,
        keys,
        learn,
        models,
        monitor,
        nlp,
        ood,
        quantize,
        serve,
        train,
        users,
    )

    app.command("analyze")(guarded(analyze.analyze_command))
    app.command("demo")(guarded(demo.demo_command))
    models.models_app.callback(invoke_without_command=True)(guarded(models.models_command))
    for name in ("versions", "promote", "rollback", "lock"):
        models.models_app.command(name)(guarded(getattr(models, f"{name}_command")))
    app.add_typer(models.models_app, name="models")
    app.command("learn")(guarded(learn.learn_command))
    app.command("train")(guarded(train.train_command))
    app.command("evaluate")(guarded(evaluate.evaluate_command))
    app.command("quantize")(guarded(quantize.quantize_command))
    app.command("half")(guarded(half.half_command))
    app.command("calibrate")(guarded(calibrate.calibrate_command))
    app.command("serve")(guarded(serve.serve_command))
    app.command("batch")(guarded(batch.batch_command))
    app.command("bundle")(guarded(bundle.bundle_command))
    app.command("ood")(guarded(ood.ood_command))
    app.command("denoise")(guarded(denoise.denoise_command))
    app.command("deblur")(guarded(deblur.deblur_command))
    app.command("deidentify")(guarded(deidentify.deidentify_command))
    for name in ("add", "passwd", "disable", "enable", "list"):
        users.users_app.command(name)(guarded(getattr(users, f"{name}_command")))
    users.users_app.command("set-role")(guarded(users.set_role_command))
    app.add_typer(users.users_app, name="users")
    nlp.nlp_app.command("extract")(guarded(nlp.extract_command))
    nlp.nlp_app.command("evaluate")(guarded(nlp.evaluate_command))
    app.add_typer(nlp.nlp_app, name="nlp")
    data.data_app.command("prepare")(guarded(data.prepare_command))
    app.add_typer(data.data_app, name="data")
    audit.audit_app.command("verify")(guarded(audit.verify_command))
    audit.audit_app.command("list")(guarded(audit.list_command))
    app.add_typer(audit.audit_app, name="audit")
    for name in ("status", "rotate", "rewrap", "retire"):
        keys.keys_app.command(name)(guarded(getattr(keys, f"{name}_command")))
    app.add_typer(keys.keys_app, name="keys")
    feedback.feedback_app.command("export")(guarded(feedback.export_command))
    app.add_typer(feedback.feedback_app, name="feedback")
    app.command("monitor")(guarded(monitor.monitor_command))


_register()
