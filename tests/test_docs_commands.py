"""Docs as tests: every `studio` command line in README.md, docs/ and the commands' own help names a command
that exists, with options it has and values it accepts; and every command's help shows an example.

A whole line (in a code block, or indented) must parse complete; a mention in running text (`studio qat`)
must name a command and options it has (and parse complete too when it gives arguments). A line with `...`
(elided on purpose) is checked as a mention; placeholders in capitals (MODEL, BOARD) stand for values the
reader supplies.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import typer.main
from typer._click.exceptions import ClickException, UsageError  # typer carries its own click

from studio.cli import app

ROOT = Path(__file__).resolve().parents[1]
COMMAND = typer.main.get_command(app)


def _leaves(command, path: list[str]):
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _leaves(sub, [*path, name])
    else:
        yield path, command


def command_lines(text: str) -> list[tuple[str, bool]]:
    """The `studio ...` command lines of a text, continuations joined and comments dropped, each with whether
    it is a whole line to run (in a code block or indented) or a mention in running text (`studio qat`)."""
    text = text.replace("\\\n", " ")
    found, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        whole = re.match(r"\s*(?:\$ )?(studio [a-z][^#`\n]*)", line) if fenced or line.startswith("    ") else None
        if whole:
            found.append((whole.group(1).strip(), True))
            continue
        found += [(m.group(1).strip(), False) for m in re.finditer(r"`(studio [a-z][^`]*)`", line)]
    return found


def check_line(line: str, whole: bool) -> None:
    """Parse `studio ...` as the CLI would, without running it; raises a ClickException for a wrong line.

    A mention in running text must name a command and options it has; a whole line must parse complete
    (up to a `...`; `[--option value]` marks an optional part and is read as given)."""
    words = shlex.split(line.split("...")[0].replace("[", " ").replace("]", " "))[1:]
    command = COMMAND
    path = ["studio"]
    while hasattr(command, "commands"):
        if not words or words[0].startswith("-"):
            if words and words[0] == "--help" or not whole:
                return
            raise UsageError(f"{' '.join(path)} needs a subcommand")
        if words[0] not in command.commands:
            raise UsageError(f"no command {' '.join([*path, words[0]])}")
        path.append(words[0])
        command, words = command.commands[words[0]], words[1:]
    if "--help" in words:
        return
    if not whole and any(not word.startswith("-") for word in words[:1]) and "..." not in line:
        whole = True  # a mention with arguments is a command to copy: it must be complete
    if not whole or "..." in line:
        known = {flag for param in command.params for flag in getattr(param, "opts", []) + getattr(
            param, "secondary_opts", [])}
        for word in words:
            if word.startswith("--") and "*" not in word and word.split("=")[0] not in known:
                raise UsageError(f"{' '.join(path)} has no option {word}")
        return
    command.make_context(" ".join(path), words, resilient_parsing=False)


def _examples(text: str) -> str:
    """A help text's example lines ("Example: studio ..." and the indented lines under "Examples:"), one per
    line, indented as in a code block."""
    lines = []
    for line in text.replace("\\n", "\n").splitlines():
        found = re.search(r"(studio [a-z].*)", line)
        if found and (line.startswith("  ") or "Example" in line):
            lines.append("    " + found.group(1))
    return "\n".join(lines)


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


DOC_LINES = [(doc.relative_to(ROOT), line, whole) for doc in _documents()
             for line, whole in command_lines(doc.read_text())]
HELP_LINES = [(" ".join(path), line, True) for path, command in _leaves(COMMAND, ["studio"])
              for line, _ in command_lines(_examples(command.help or ""))]


def test_the_docs_show_commands_at_all():
    assert len(DOC_LINES) > 50 and any("board install" in line for _, line, whole in DOC_LINES if whole)


@pytest.mark.parametrize("where, line, whole", DOC_LINES + HELP_LINES, ids=lambda v: str(v)[:60])
def test_a_documented_command_line_parses(where, line, whole):
    try:
        check_line(line, whole)
    except ClickException as exc:
        pytest.fail(f"{where}: `{line}`: {exc.format_message()}")


@pytest.mark.parametrize("path, command", list(_leaves(COMMAND, ["studio"])), ids=lambda v: " ".join(v)
                         if isinstance(v, list) else "")
def test_every_command_shows_an_example(path, command):
    examples = [line for line, _ in command_lines(_examples(command.help or ""))]
    assert examples and all(e.startswith(" ".join(path)) or e.startswith("studio ") for e in examples), path


def test_no_doc_points_outside_the_repository():
    for doc in _documents():
        text = doc.read_text()
        assert "shared docs" not in text and "../shared" not in text, doc
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            if not re.match(r"https?://", target):
                assert (doc.parent / target).exists(), f"{doc.name} links to {target}, which is not there"


def test_the_docs_run_models_that_an_earlier_step_makes():
    """exports/student.* was made by nothing; qat writes OUT/qat.pt (not qat/best.pt)."""
    for where, line, _ in DOC_LINES + HELP_LINES:
        assert "exports/student." not in line and "qat/best.pt" not in line, (where, line)


def test_the_host_is_never_told_to_run_the_board_only_backend():
    """`--backend rknnlite` runs under the agent on a board; on the host it is `studio board run`."""
    for where, line, whole in DOC_LINES + HELP_LINES:
        host = re.match(r"studio (predict|eval|bench pipeline) ", line)
        assert not (whole and host and "rknnlite" in line), (where, line)


def test_the_readme_says_what_the_board_runtime_imports():
    import subprocess
    import sys

    probe = "import sys, deploy.runtime.pipeline; print('cv2' in sys.modules, 'numpy' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    said = next(line for line in (ROOT / "README.md").read_text().splitlines() if "studio bench import" in line)
    assert loaded == ["True", "True"] and "numpy" in said and "OpenCV" in said


def test_the_demo_takes_as_long_in_the_readme_as_in_its_help():
    readme = re.search(r"takes\s+about (\d+) minutes", (ROOT / "README.md").read_text())
    help_text = dict((" ".join(p), c.help) for p, c in _leaves(COMMAND, ["studio"]))["studio demo"]
    assert readme and f"about {readme.group(1)} minutes" in help_text


SELF_CONTAINED = r"studio (models inspect \S+\.yaml|bench (postprocess|merge|import))\b"  # need no file of yours


@pytest.mark.parametrize("where, line", [(w, line) for w, line, whole in DOC_LINES
                                         if whole and re.match(SELF_CONTAINED, line)], ids=lambda v: str(v)[:60])
def test_a_documented_command_that_needs_nothing_of_yours_runs(where, line, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli(*shlex.split(line)[1:])
    assert result.exit_code == 0, (where, line, result.stderr[-1000:])
    if "--json" in line:
        json.loads(result.stdout)
