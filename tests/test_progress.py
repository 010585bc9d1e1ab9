"""Progress on stderr: a bar on a terminal; in a log file plain lines, no carriage returns."""

import io

import pytest

from bayesnas import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_plain_lines(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    with progress.bar(5, "scoring", "cand") as bar:
        for _ in range(5):
            bar.update(1)
    text = log.getvalue()
    assert "\r" not in text  # issue 24, defect 12: no carriage-return frames in logs
    lines = text.splitlines()
    assert lines and "scoring" in lines[-1] and "5/5" in lines[-1]


def test_a_terminal_gets_a_bar_and_no_progress_means_nothing(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with progress.bar(3, "search", "step") as bar:
        bar.update(3)
    assert "\r" in terminal.getvalue()
    quiet = io.StringIO()
    monkeypatch.setattr("sys.stderr", quiet)
    with progress.step_bar(3, 0, show=False) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""


@pytest.mark.parametrize("initial", [0, 2])
def test_a_resumed_bar_starts_where_the_run_was(monkeypatch, initial):
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    with progress.step_bar(4, initial, show=True) as bar:
        bar.update(4 - initial)
    assert "4/4" in log.getvalue().splitlines()[-1]
