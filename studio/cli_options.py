"""Typer options made from their one declaration (deploy.runtime.options), and the check that types them.

A command declares `steps: int = declared(PRUNE["steps"])` and carries `@checked(PRUNE)`: the
default, flag, help and range come from the table, and every value is checked against it
(one line and exit code 2 when out of range) before the command's body runs.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer

from deploy.runtime.options import Option, Options


def span(option: Option) -> str:
    """The range in a few characters for --help: '0..1', '>= 1', '> 0' ('' when unbounded)."""
    if option.low is not None and option.high is not None:
        return f"{option.low:g}..{option.high:g}"
    if option.positive:
        return "> 0"
    if option.low is not None:
        return f">= {option.low:g}"
    return f"<= {option.high:g}" if option.high is not None else ""


def declared(option: Option, *flags: str, help: str | None = None) -> Any:
    """The typer option for `option`: its default (lists as text), its flag(s), its help with its range."""
    default = ... if option.required else option.default
    if isinstance(default, (list, tuple)):
        default = option.as_text(default)
    names = [f"{option.flag}/{option.off}" if option.off else option.flag]
    names += [flag for flag in flags if flag not in names]
    text = help or option.help[:1].upper() + option.help[1:].rstrip(".") + "."
    if span(option):
        text += f" Range: {span(option)}."
    if option.type is bool and not option.off:
        return typer.Option(default, *names, help=text)
    return typer.Option(default, *names, help=text, show_default=default is not None)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def checked(*tables: Options, skip: tuple = ()) -> Callable:
    """Type and range-check every keyword argument a table declares before the command runs (UserError if bad).

    Sits under `handles_errors`, so a bad value is one line and exit code 2. `skip` names parameters that share
    a name with a table's option but mean something else here (the host's model path, not the board's).
    """
    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            for table in tables:
                for name in set(kwargs) & set(table.names) - set(skip):
                    if table[name].numeric and not _is_number(kwargs[name]):
                        continue  # the same name as text here (--workers 1,2 of the benches, import's --images DIR)
                    kwargs[name] = table[name].check(kwargs[name])
            return command(*args, **kwargs)

        return wrapper

    return decorate
