"""Progress lines: a stage's start and end with its elapsed time, heartbeats while it runs, counts,
and the INFO messages of sim/ and synth/, all on stderr whether or not it is a terminal."""

from __future__ import annotations

import logging
import re
import time

import pytest

from bitfab.progress import Reporter, reporting


def test_a_stage_says_when_it_starts_ends_and_that_it_still_runs(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = Reporter(heartbeat_s=0.05)
    with reporter.stage("placing and routing"):
        assert reporter.current == "placing and routing"
        time.sleep(0.3)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and re.fullmatch(r"\[ +[\d.]+ s\] placing and routing \.\.\.", lines[0])
    assert any(re.search(r"placing and routing: \d+ s so far$", line) for line in lines[1:-1])
    assert re.search(r"placing and routing: done in 0\.[3-9] s$", lines[-1])
    assert reporter.current is None


def test_an_interrupted_stage_is_remembered(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = Reporter()
    with pytest.raises(KeyboardInterrupt), reporter.stage("outer"), reporter.stage("inner"):
        raise KeyboardInterrupt
    assert reporter.interrupted == "inner" and reporter.current is None
    assert "done" not in capsys.readouterr().err


def test_counts_are_throttled_but_the_last_always_shows(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = Reporter(count_every_s=60)
    for done in range(1, 11):
        reporter.count("chunks", done, 10)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("] ")[1] for line in lines] == ["chunks: 1/10", "chunks: 10/10"]


def test_tool_messages_reach_the_reporter_only_while_reporting(capsys: pytest.CaptureFixture[str]) -> None:
    with reporting(Reporter()):
        logging.getLogger("bitfab.sim").info("Verilator: built in %.1f s", 12.5)
    logging.getLogger("bitfab.sim").info("not shown: nobody is reporting")
    err = capsys.readouterr().err
    assert err.endswith("] Verilator: built in 12.5 s\n") and "not shown" not in err
