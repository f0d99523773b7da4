"""Score a finished `mutmut run` per module and list what survived: `make mutate` writes out/mutation/.

A mutant is one small change to the code (a flipped comparison, an off-by-one, a dropped factor). It is
killed when a test fails on it; a mutant that no test notices is a gap in the tests, unless the change
cannot alter behaviour (an equivalent mutant). Equivalent mutants are named, each with its reason, in
tests/mutation-equivalents.md; the score is killed / (total - equivalent) per module. A timeout counts
as killed (the mutant made the code loop or crawl, and the run noticed).

Usage: python tests/mutation_report.py [--out DIR] [--min-score PERCENT]
Exit status 1 when a module scores under --min-score, after the report is written.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections import Counter
from pathlib import Path

from deploy.runtime.atomic import write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parent.parent

NOTES = ROOT / "tests" / "mutation-equivalents.md"
# "- `deploy.runtime.decode.x_decode_dfl__mutmut_3`: the reason, on one line"
NOTE_LINE = re.compile(r"^- `(?P<name>[^`]+__mutmut_\d+)`:\s*(?P<reason>\S.*)$")
DETECTED = {"killed", "timeout", "segfault", "caught by type check"}


def equivalents(path: Path = NOTES) -> dict[str, str]:
    """The mutants explained as equivalent, name -> reason."""
    notes = {}
    for line in path.read_text().splitlines():
        match = NOTE_LINE.match(line.strip())
        if match:
            notes[match["name"]] = match["reason"]
    return notes


def mutated_modules() -> list[str]:
    """The files `make mutate` mutates, as pyproject.toml's [tool.mutmut] names them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return list(config["only_mutate"])


def module_results(path: str, notes: dict[str, str]) -> dict:
    """Status of every mutant of one file, from the run's meta file."""
    from mutmut.stats import status_by_exit_code

    meta = ROOT / "mutants" / f"{path}.meta"
    if not meta.exists():
        raise SystemExit(f"mutation report: {meta} is missing; run `make mutate` (mutmut run) first")
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    status = {name: status_by_exit_code[code] for name, code in codes.items()}
    equivalent = sorted(name for name in status if name in notes and status[name] not in DETECTED)
    survived = sorted(name for name, s in status.items() if s not in DETECTED and name not in notes)
    killed = sum(s in DETECTED for s in status.values())
    scored = len(status) - len(equivalent)
    return {
        "path": path,
        "total": len(status),
        "killed": killed,
        "equivalent": equivalent,
        "survived": survived,
        "by_status": dict(Counter(status.values())),
        "score": 100.0 * killed / scored if scored else 100.0,
        # a note on a mutant the tests now kill is out of date
        "stale_notes": sorted(name for name in status if name in notes and status[name] in DETECTED),
        "status": status,
    }


def mutant_diff(name: str, path: str) -> str:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    return get_diff_for_mutant(name, path=path)


def render_markdown(results: list[dict], notes: dict[str, str]) -> str:
    lines = ["# Mutation testing of the numerical core", "",
             "| module | mutants | killed | equivalent | survived | score |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| `{r['path']}` | {r['total']} | {r['killed']} | {len(r['equivalent'])} "
                     f"| {len(r['survived'])} | {r['score']:.1f}% |")
    for r in results:
        if not r["survived"] and not r["equivalent"] and not r["stale_notes"]:
            continue
        lines += ["", f"## {r['path']}"]
        for name in r["survived"]:
            lines += ["", f"### survived ({r['status'][name]}): `{name}`", "", "```diff",
                      mutant_diff(name, r["path"]), "```"]
        for name in r["equivalent"]:
            lines += ["", f"- equivalent: `{name}`: {notes[name]}"]
        for name in r["stale_notes"]:
            lines += ["", f"- note out of date (now killed): `{name}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "mutation", help="report folder")
    parser.add_argument("--min-score", type=float, default=90.0, help="fail under this score (percent)")
    args = parser.parse_args(argv)

    notes = equivalents()
    results = [module_results(path, notes) for path in mutated_modules()]
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "report.md", render_markdown(results, notes))
    write_json_atomic(args.out / "report.json", results)

    width = max(len(r["path"]) for r in results)
    for r in results:
        print(f"{r['path']:<{width}}  {r['score']:5.1f}%  killed {r['killed']}/{r['total']}, "
              f"equivalent {len(r['equivalent'])}, survived {len(r['survived'])}")
    print(f"report: {args.out / 'report.md'}")
    low = [r["path"] for r in results if r["score"] < args.min_score]
    if low:
        print(f"under {args.min_score:.0f}%: {', '.join(low)}", file=sys.stderr)
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
