"""Fixtures for integration tests: a fake upstream and a running aigw system."""
from __future__ import annotations

import pytest

from harness import FakeUpstream, System, BIN


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


#  Figures the tests measure (recovery times, counts), printed at the end of the run.
FIGURES: list[str] = []


@pytest.fixture
def figures():
    return FIGURES.append


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("aigw figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture
def upstream(tmp_path):
    up = FakeUpstream(tmp_path)
    yield up
    up.stop()


@pytest.fixture
def make_system(tmp_path, request):
    systems: list[System] = []

    def make(**kw) -> System:
        for b in ("aigw-broker", "aigw-worker", "aigw-edge"):
            assert (BIN / b).exists(), f"{b} not built; run scripts/test"
        s = System(tmp_path, **kw)
        systems.append(s)
        return s

    yield make
    for s in systems:
        s.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for s in systems:
            for name in s.procs:
                print(f"----- {name} log -----\n{s.logs(name)}")
