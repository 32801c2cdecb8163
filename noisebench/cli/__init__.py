"""The `noisebench` command. One typer sub-app per file; heavy imports happen inside commands
so that `noisebench --help` stays fast."""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from noisebench.errors import UserError

# typer >= 0.20 vendors its own click; find its exception classes through a public name.
_CLICK_ERRORS = {c.__name__: c for c in typer.BadParameter.__mro__}
ClickException, UsageError = (
    _CLICK_ERRORS["ClickException"],
    _CLICK_ERRORS["UsageError"],
)


class _Group(TyperGroup):
    """Turns bad input (ours or click's) into one line on stderr and exit code 2."""

    def main(
        self,
        args=None,
        prog_name=None,
        complete_var=None,
        standalone_mode=True,
        **extra,
    ):
        try:
            rv = super().main(
                args, prog_name, complete_var, standalone_mode=False, **extra
            )
        except UserError as err:
            _fail(str(err))
        except typer.Abort:
            _fail("aborted", code=1)
        except ClickException as err:
            if (
                type(err).__name__ == "NoArgsIsHelpError"
            ):  # bare `noisebench`: show the help
                err.show()
                sys.exit(err.exit_code)
            hint = ""
            if isinstance(err, UsageError) and err.ctx is not None:
                hint = f" (see '{err.ctx.command_path} --help')"
            _fail(f"{err.format_message()}{hint}", code=err.exit_code)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def _fail(message: str, code: int = 2) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)


app = typer.Typer(
    cls=_Group,
    help="A benchmark harness for learning with noisy labels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)


def _register() -> None:
    from noisebench.cli import (
        datasets,
        evaluate,
        leaderboard,
        methods,
        models,
        noise,
        reproduce,
        store,
        sweep,
        tune,
    )

    app.command("evaluate")(evaluate.evaluate)
    app.command("tune")(tune.tune)
    app.command("sweep")(sweep.sweep)
    app.add_typer(methods.app, name="methods")
    app.command("models")(models.models)
    app.add_typer(datasets.app, name="datasets")
    app.add_typer(noise.app, name="noise")
    app.add_typer(leaderboard.app, name="leaderboard")
    app.add_typer(store.app, name="store")
    app.command("reproduce")(reproduce.reproduce)


_register()


def main() -> None:
    app()
