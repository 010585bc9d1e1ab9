"""When q decided, read from metrics rows."""

from bayesnas.report.decision import describe, when_q_decided


def _row(epoch: int, mode: str, top: float, learns: bool) -> dict:
    rest = (1 - top) / 4
    probs = {"a": top, "b": rest, "c": rest, "d": rest, "e": rest}
    return {
        "epoch": epoch,
        "q_learns": learns,
        "gates": {"mode": mode, "edges": [{"probs": probs}] * 6},
    }


def test_warmup_end_mode_fixed_and_sharp_epochs() -> None:
    rows = [
        _row(1, "x", 0.2, False),
        _row(2, "x", 0.2, False),
        _row(3, "y", 0.4, True),
        _row(4, "z", 0.8, True),
        _row(5, "z", 0.95, True),
        _row(6, "z", 0.97, True),
    ]
    decided = when_q_decided(rows)
    assert decided == {"warmup_end": 2, "mode_fixed_from": 4, "sharp_from": 5}
    text = describe(decided, 6)
    assert "epoch 4 of 6" in text and "1-2" in text and "from epoch 5" in text


def test_a_mode_that_never_changed_and_never_sharpened() -> None:
    rows = [_row(1, "x", 0.3, True), _row(2, "x", 0.5, True)]
    assert when_q_decided(rows) == {"warmup_end": None, "mode_fixed_from": 1, "sharp_from": None}
    assert when_q_decided([]) == {"warmup_end": None, "mode_fixed_from": None, "sharp_from": None}


def test_sharpness_that_was_lost_again_does_not_count() -> None:
    rows = [_row(1, "x", 0.95, True), _row(2, "x", 0.5, True), _row(3, "x", 0.95, True)]
    assert when_q_decided(rows)["sharp_from"] == 3
