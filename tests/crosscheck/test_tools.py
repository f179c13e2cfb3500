"""One module per external counter: a tool run on another release than the one its rules and
known bugs were checked against says so."""

from __future__ import annotations

import warnings
from dataclasses import replace

from torch import nn

import archstat
from archstat.crosscheck import TOOLS


def test_a_release_other_than_the_checked_one_is_noted(monkeypatch) -> None:
    torch_tool = TOOLS["torch"]
    monkeypatch.setitem(TOOLS, "torch", replace(torch_tool, checked="torch 0.0.1"))
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = archstat.check(model, (1, 3, 8, 8), tools=["torch"])
    [note] = report.results["torch"].notes
    assert note == f"its rules and known bugs were checked against torch 0.0.1, this is torch {torch_tool.version}"
    status = {r["tool"]: r["status"] for r in report.totals_rows(human=False)}
    assert status["torch"] == note
    # 3x3 conv to 4 x 6x6: 4*36*27 = 3,888; linear 144 -> 2: 288 -- the count itself is unaffected
    assert report.results["torch"].total == 3_888 + 288
