"""Options declared once (name, type, default, range, help): parsers, argv, recipe checks and dataclasses derive.

Standard library only, so the board's agent (Python 3.9) parses its command line from the
same table the host builds that command line from.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from deploy.errors import UserError

_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def _number(value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(value)
    number = float(value)
    if not math.isfinite(number):  # nan passes every comparison, so no range could catch it
        raise ValueError(value)
    if kind is float:
        return number
    if number != int(number):
        raise ValueError(value)
    return int(number)


@dataclass(frozen=True)
class Option:
    """One setting: `type` is int, float, bool, str or a converter that raises ValueError (then `kind` names it).

    `low`/`high` bound numbers (and each number of a converted list); `positive` asks for more than zero;
    `empty` lets None through (it means "no limit" or "the default"); `off` is the flag that turns
    off a bool whose default is on.
    """

    name: str
    type: Callable = str
    default: Any = None
    help: str = ""
    low: float | None = None
    high: float | None = None
    positive: bool = False
    choices: tuple = ()
    empty: bool = False
    required: bool = False
    off: str = ""
    kind: str = ""

    def but(self, **changes: Any) -> Option:
        """The same option with another default or help (a command whose default differs keeps the range)."""
        return dataclasses.replace(self, **changes)

    @property
    def numeric(self) -> bool:
        return self.type in (int, float)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, where: str = "") -> Any:
        """`value` as this option's type, inside its range, or a one-line UserError naming it."""
        label = f"{where}: {self.name}" if where else self.flag
        if value is None:
            if self.empty or (self.default is None and not self.required):
                return None
            raise UserError(f"{label} has no value")
        try:
            typed = self._convert(value)
        except (TypeError, ValueError):
            raise UserError(f"{label} {value!r} must be {self.kind or _WORDS.get(self.type, 'valid')}") from None
        problem = self._outside(typed)
        if problem:
            raise UserError(f"{label} {value!r} must {problem}")
        return typed

    def _convert(self, value: Any) -> Any:
        if self.type is bool:
            if not isinstance(value, bool):
                raise ValueError(value)
            return value
        if self.type in (int, float):
            return _number(value, self.type)
        if self.type is str:
            if not isinstance(value, str):
                raise ValueError(value)
            return value
        return self.type(value)

    def _outside(self, value: Any) -> str:
        """What is wrong with a converted value ('' when nothing is)."""
        if self.choices and value not in self.choices:
            return f"be one of {', '.join(map(str, self.choices))}"
        for number in value if isinstance(value, (list, tuple)) else (value,):
            if not isinstance(number, (int, float)) or isinstance(number, bool):
                continue
            if self.positive and number <= 0:
                return "be positive"
            if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
                return self.range_words()
        return ""

    def range_words(self) -> str:
        if self.low is not None and self.high is not None:
            return f"be in {self.low:g}..{self.high:g}"
        if self.low == 0:
            return "not be negative"
        return f"be at least {self.low:g}" if self.low is not None else f"be at most {self.high:g}"

    def as_text(self, value: Any) -> str:
        """The command-line spelling of a value (lists joined by commas)."""
        return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


class Options:
    """An ordered table of options: look one up, check a mapping, build a parser, an argv or a dataclass."""

    def __init__(self, *options: Option) -> None:
        self._by_name = {option.name: option for option in options}

    def __getitem__(self, name: str) -> Option:
        return self._by_name[name]

    def __iter__(self) -> Iterator[Option]:
        return iter(self._by_name.values())

    @property
    def names(self) -> tuple:
        return tuple(self._by_name)

    def default(self, name: str) -> Any:
        return self._by_name[name].default

    def check(self, values: dict, where: str, section: str = "") -> dict:
        """Each value typed and in range; unknown names refused with the list of known ones."""
        unknown = sorted(set(values) - set(self._by_name))
        if unknown:
            what = f"{section} option(s)" if section else "option(s)"
            raise UserError(f"{where}: unknown {what} {', '.join(unknown)}; known: {', '.join(self.names)}")
        label = f"{where} {section}" if section else where
        return {name: self[name].check(value, label) for name, value in values.items()}

    def check_fields(self, obj: Any, skip: tuple = ()) -> None:
        """Check the attributes of `obj` this table declares: a request built in code gets the command line's checks."""
        for name in self.names:
            if name not in skip and hasattr(obj, name):
                self[name].check(getattr(obj, name))

    def parser(self, prog: str, description: str) -> argparse.ArgumentParser:
        """An argparse parser with one argument per option; a bad value is argparse's usage error (exit 2)."""
        parser = argparse.ArgumentParser(prog=prog, description=description)
        for option in self:
            if option.type is bool:
                action = argparse.BooleanOptionalAction if option.default else "store_true"
                parser.add_argument(option.flag, action=action, default=bool(option.default), help=option.help)
            else:
                parser.add_argument(option.flag, type=_argparse_type(option), default=option.default,
                                    required=option.required, help=option.help)
        return parser

    def argv(self, values: dict) -> list:
        """The command line that `parser` turns back into `values` (defaults and None left out)."""
        args = []
        for option in self:
            value = values.get(option.name, option.default)
            if option.type is bool:
                if bool(value) != bool(option.default):
                    args.append(option.flag if value else "--no-" + option.flag[2:])
            elif value is not None and (option.required or value != option.default):
                args += [option.flag, option.as_text(value)]
        return args

    def dataclass(self, name: str, leave_out: tuple = (), doc: str = "") -> type:
        """A dataclass with one field per option (required ones first), defaults from the table."""
        kept = [option for option in self if option.name not in leave_out]
        fields = [(o.name, o.type if isinstance(o.type, type) else Any) for o in kept if o.required]
        fields += [(o.name, o.type if isinstance(o.type, type) else Any, dataclasses.field(default=o.default))
                   for o in kept if not o.required]
        made = dataclasses.make_dataclass(name, fields)
        made.__doc__ = doc or made.__doc__
        return made


def ranges(*tables: Options) -> Options:
    """The numeric options of several tables as one table of ranges; one name has one range everywhere."""
    found: dict = {}
    for option in (option for table in tables for option in table if option.numeric):
        known = found.setdefault(option.name, option.but(empty=True))  # None: an optional option left out
        bounds = (known.type, known.low, known.high, known.positive)
        if bounds != (option.type, option.low, option.high, option.positive):
            raise ValueError(f"{option.name} is declared with two ranges")
    return Options(*found.values())


def _argparse_type(option: Option) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return option.check(text)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = option.name
    return convert
