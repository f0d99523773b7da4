"""The training schedule: cosine rate and mosaic by epoch, and how an until-flat run ends (cool-down, then flat)."""
from __future__ import annotations

from pathlib import Path

import pytest

from studio.core.compress.loop import LoopConfig
from studio.core.compress.schedule import Schedule


def _cfg(**changes) -> LoopConfig:
    return LoopConfig(data=Path("data.yaml"), epochs=60, out=Path("out"), **changes)


def _history(maps: list[float]) -> list[dict]:
    return [{"epoch": i + 1, "map50_95": m} for i, m in enumerate(maps)]


PLATEAU = [0.10, 0.20] + [0.201] * 18  # flat from epoch 12 on: +0.1 points over the last 10


def test_a_fixed_run_warms_up_follows_the_cosine_and_drops_mosaic_for_its_last_epochs():
    schedule = Schedule.of(_cfg(), _history(PLATEAU))  # without until_flat the scores change nothing
    assert schedule.cool_from == 50
    assert schedule.rate(0) == pytest.approx(1e-4) and schedule.rate(1) == pytest.approx(1e-3)
    assert schedule.rate(60) == pytest.approx(5e-5)  # lr * final_lr
    rates = [schedule.rate(e) for e in range(1, 61)]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert [schedule.mosaic(e) for e in (0, 49, 50, 59)] == [True, True, False, False]
    assert not schedule.done(_history(PLATEAU + [0.201] * 39))


def test_an_until_flat_run_cools_down_where_it_went_flat_then_stops_once_flat_again():
    cfg = _cfg(until_flat=True)
    before = Schedule.of(cfg, _history(PLATEAU[:11]))
    assert before.cool_from == 50 and before.mosaic(11) and not before.done(_history(PLATEAU[:11]))
    schedule = Schedule.of(cfg, _history(PLATEAU[:12]))
    assert schedule.cool_from == 12 and not schedule.mosaic(12) and schedule.mosaic(11)
    assert not schedule.done(_history(PLATEAU[:12]))  # flat, but the cool-down is still to come
    assert schedule.rate(12) == pytest.approx(before.rate(12))  # the rate goes on from where it was
    rates = [schedule.rate(12 + k / 2) for k in range(21)]
    assert all(a > b for a, b in zip(rates, rates[1:])) and rates[-1] == pytest.approx(5e-5)
    assert schedule.rate(40) == pytest.approx(5e-5)  # then the floor
    cooled = PLATEAU[:12] + [0.2 + 0.005 * (k + 1) for k in range(10)]  # the cool-down gains 0.5 points an epoch
    assert Schedule.of(cfg, _history(cooled)).cool_from == 12  # a resumed run finds the same schedule
    assert not schedule.done(_history(cooled))
    assert not schedule.done(_history(cooled + [0.251] * 9))  # +0.6 points over the last 10
    assert schedule.done(_history(cooled + [0.251] * 10))  # +0.1 points over the last 10: stop


def test_a_run_that_goes_flat_in_its_own_last_phase_stops_at_once():
    cfg = LoopConfig(data=Path("d"), epochs=20, out=Path("o"), until_flat=True)  # a QAT width: 10 + 10
    schedule = Schedule.of(cfg, _history(PLATEAU[:12]))
    assert schedule.cool_from == 10 and schedule.done(_history(PLATEAU[:12]))
    assert schedule.rate(12) == pytest.approx(Schedule.of(LoopConfig(data=Path("d"), epochs=20, out=Path("o")),
                                                          []).rate(12))
