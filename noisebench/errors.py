"""The one exception type that means "the user asked for something invalid"."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input. The CLI prints its message on one line and exits with code 2."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown(kind: str, name: str, choices: Iterable[str]) -> UserError:
    choices = sorted(choices)
    return UserError(
        f"unknown {kind} '{name}'{did_you_mean(name, choices)}; "
        f"choose from: {', '.join(choices)}"
    )


_DTYPE_KINDS = {
    "b": "booleans",
    "c": "complex numbers",
    "U": "strings",
    "S": "bytes",
    "O": "Python objects",
    "M": "dates",
    "m": "time spans",
    "V": "records",
}


def dtype_name(dtype) -> str:
    """What a numpy dtype holds, in words, for messages ("complex numbers")."""
    return _DTYPE_KINDS.get(getattr(dtype, "kind", ""), str(dtype))
