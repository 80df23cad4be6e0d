"""A dependency's outage is logged when it starts and when it ends, never once per call
(issue 13)."""

from __future__ import annotations

import logging

import pytest

from guichet.logs import Outage

log = logging.getLogger("guichet.test_outage")


def test_an_outage_is_told_twice_whatever_the_calls_refused_meanwhile(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    outage = Outage(log, "thing.lost", "thing.back")

    outage.recovered()  # nothing to say while up
    for _ in range(1000):
        outage.failed(ConnectionRefusedError("refused"))
    outage.failed("timeout", count=5)
    outage.recovered()
    outage.recovered()

    lines = [(r.getMessage(), r.levelno, getattr(r, "fields", {})) for r in caplog.records]
    assert [(m, lvl) for m, lvl, _ in lines] == [
        ("thing.lost", logging.ERROR),
        ("thing.back", logging.WARNING),
    ]
    assert lines[0][2] == {"error": "ConnectionRefusedError"}
    assert lines[1][2]["refused"] == 1005
    assert not outage.down


def test_a_second_outage_counts_afresh(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    outage = Outage(log, "thing.lost", "thing.back")

    outage.failed("a", count=3)
    outage.recovered()
    outage.failed("b")
    outage.recovered()

    backs = [getattr(r, "fields", {}) for r in caplog.records if r.getMessage() == "thing.back"]
    assert [b["refused"] for b in backs] == [3, 1]
