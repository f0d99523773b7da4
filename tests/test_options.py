"""Options declared once: every agent option survives host argv -> agent parser, every recipe key survives
YAML -> load_recipe, the commands' defaults are the tables', and every range is enforced everywhere."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import yaml

from deploy.board.agent.__main__ import parse
from deploy.board.agent.options import AGENT_OPTIONS, AgentConfig, RunOptions
from deploy.runtime.options import Option
from studio.core.compress.options import IMGSZ, SECTIONS

SPECIAL = {"bits": [16, 8], "kd": ["response", "relation"], "protect": [0, 3], "ptq": ["mmse"],
           "backend": "ort", "source": "/data/scenes", "model": "models/m.rknn", "run_file": "runs/r.json",
           "results": "service/results.jsonl"}
LOADED_AS = {"kd": ("response", "relation"), "protect": (0, 3)}  # YAML lists that the stages take as tuples


def _other(option: Option):
    """A valid value that is not the option's default."""
    if option.name in SPECIAL:
        return SPECIAL[option.name]
    if option.choices:
        return next(c for c in option.choices if c != option.default)
    if option.type is bool:
        return not option.default
    low = option.low if option.low is not None else 0
    if option.type is int:
        return low + 2 if option.default != low + 2 else low + 3
    high = option.high if option.high is not None else low + 10
    return (low + high) / 3 if option.default != (low + high) / 3 else (low + high) / 4


def _too_small(option: Option):
    """A value just outside the lower bound, or None where the option has none."""
    if option.positive:
        return 0
    if option.low is not None and option.type in (int, float):
        return option.low - 1
    return None


def test_every_agent_option_survives_the_host_argv_and_the_agent_parser():
    values = {option.name: _other(option) for option in AGENT_OPTIONS}
    assert parse(AGENT_OPTIONS.argv(values)) == AgentConfig(**values)
    required = {"model": "m.rknn", "source": "camera:0", "run_file": "r.json"}
    assert parse(AGENT_OPTIONS.argv(required)) == AgentConfig(**required)  # everything else at its default


def test_run_options_are_the_agent_options_the_host_chooses():
    host = set(RunOptions.__dataclass_fields__)
    assert host == set(AGENT_OPTIONS.names) - {"model", "run_file", "port"}
    assert RunOptions(source="s").workers == AGENT_OPTIONS.default("workers")


@pytest.mark.parametrize("option", [o for o in AGENT_OPTIONS if _too_small(o) is not None or o.high is not None],
                         ids=lambda o: o.name)
def test_the_agent_refuses_values_outside_their_range(option, capsys):
    required = {"model": "m.rknn", "source": "camera:0", "run_file": "r.json"}
    bad = _too_small(option) if _too_small(option) is not None else option.high + 1
    argv = AGENT_OPTIONS.argv(required) + [option.flag, str(bad)]
    with pytest.raises(SystemExit) as exit_:
        parse(argv)
    assert exit_.value.code == 2 and f"{option.flag} '{bad}' must" in capsys.readouterr().err


def _recipe(tmp_path: Path, tiny_pair, **sections) -> Path:
    data, teacher, student = tiny_pair
    raw = {"model": str(student), "teacher": str(teacher), "data": str(data), **sections}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("section", list(SECTIONS))
def test_every_recipe_key_round_trips_with_its_type(section, tmp_path, tiny_pair):
    from studio.core.compress.recipe import load_recipe

    values = {option.name: _other(option) for option in SECTIONS[section]}
    if "teacher" in values:
        values["teacher"] = str(tiny_pair[1])
    sections = {"qat": {}, section: values}
    loaded = getattr(load_recipe(_recipe(tmp_path, tiny_pair, imgsz=_other(IMGSZ) * 32, **sections)), section)
    for name, value in values.items():
        expected = Path(value) if name == "teacher" else LOADED_AS.get(name, value)
        assert loaded[name] == expected and type(loaded[name]) is type(expected), name


@pytest.mark.parametrize("section, option", [(s, o) for s, table in SECTIONS.items() for o in table
                                             if _too_small(o) is not None], ids=lambda v: getattr(v, "name", v))
def test_every_recipe_range_is_enforced(section, option, tmp_path, tiny_pair):
    from deploy.errors import UserError
    from studio.core.compress.recipe import load_recipe

    bad = _too_small(option)
    with pytest.raises(UserError, match=re.escape(f"{section}: {option.name} {bad!r} must")):
        load_recipe(_recipe(tmp_path, tiny_pair, **{"qat": {}, section: {option.name: bad}}))


@pytest.mark.parametrize("command, table", [("prune_cmd", "prune"), ("distill_cmd", "distill"), ("qat_cmd", "qat")])
def test_each_stage_command_takes_every_recipe_key_with_the_tables_default(command, table):
    from studio.commands import compress, quantize

    function = getattr(compress, command, None) or getattr(quantize, command)
    params = inspect.signature(function).parameters
    for option in SECTIONS[table]:
        assert option.name in params, f"studio {table} has no {option.flag}"
        default = params[option.name].default.default
        expected = option.as_text(option.default) if isinstance(option.default, tuple) else option.default
        assert default == expected, option.name


@pytest.mark.parametrize("args, message", [
    (("board", "run", "b", "m.rknn", "--source", "s", "--workers", "0"), "--workers 0 must be in 1..64"),
    (("board", "run", "b", "m.rknn", "--source", "s", "--conf", "1.5"), "--conf 1.5 must be in 0..1"),
    (("prune", "m.pt", "--steps", "0"), "--steps 0 must be at least 1"),
    (("prune", "m.pt", "--protect", "1,a"), "--protect '1,a' must be layer indices"),
    (("distill", "--student", "s.pt", "--data", "d.yaml", "--lr", "0"), "--lr 0.0 must be positive"),
    (("qat", "m.pt", "--data", "d.yaml", "--tune-every", "0"), "--tune-every 0 must be at least 1"),
])
def test_commands_refuse_out_of_range_values_in_one_line(cli, args, message):
    result = cli(*args)
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.stderr


def _commands():
    """(words, callback) of every `studio` command."""
    from studio import cli

    groups = [((), cli.app), (("models",), cli.models_app), (("data",), cli.data_app), (("bench",), cli.bench_app),
              (("board",), cli.board.board_app)]
    return [((*words, info.name), info.callback) for words, group in groups for info in group.registered_commands]


def _required_args(callback) -> list[str]:
    """Stand-in values for a command's required arguments and options (the range check comes before any use)."""
    from typer.models import ArgumentInfo

    positional, options = [], []
    for name, param in inspect.signature(callback).parameters.items():
        info = param.default
        if getattr(info, "default", None) is not ...:
            continue
        if isinstance(info, ArgumentInfo):
            positional.append("x")
        else:
            options += [(info.param_decls or ("--" + name.replace("_", "-"),))[0].split("/")[0], "x"]
    return positional + options


def _range_cases():
    from studio.core.ranges import RANGES

    cases = []
    for words, callback in _commands():
        for name, param in inspect.signature(callback).parameters.items():
            if name not in RANGES.names or not re.fullmatch(r"(int|float)( \| None)?", str(param.annotation)):
                continue  # the same name as text (the benches' --workers 1,2,3, import's --images DIR)
            option = RANGES[name]
            decls = getattr(param.default, "param_decls", None) or ("--" + name.replace("_", "-"),)
            bad = ["nan"] + [str(v) for v in (_too_small(option), option.high and option.high + 1) if v is not None]
            cases += [(words, callback, decls[0], value) for value in bad]
    return cases


@pytest.mark.parametrize("words, callback, flag, value", _range_cases(),
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else v if isinstance(v, str) else "")
def test_every_numeric_option_of_every_command_is_range_checked(cli, words, callback, flag, value):
    result = cli(*words, *_required_args(callback), flag, value)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    said = result.stderr.strip()
    assert flag in said and (" must " in said or "Invalid value" in said) and "Traceback" not in said
    assert len(said.splitlines()) == 1, said
