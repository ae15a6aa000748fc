"""Every command's usage errors are one line naming the option, with a non-zero exit."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from analysis.__main__ import main as analysis_main
from interleave.__main__ import main as interleave_main
from rankers.__main__ import main as rankers_main
from serving.__main__ import main as serving_main
from simulations.__main__ import main as simulations_main


@pytest.mark.parametrize(
    ("main", "argv", "words"),
    [
        (analysis_main, ["report", "logs", "--out", ""], "argument --out: must name a directory"),
        (analysis_main, ["report", "logs", "--out", "o", "--alpha", "1e-300"], "--alpha"),
        (
            analysis_main,
            ["report", "logs", "--out", "o", "--resamples", "1000000000000"],
            "must lie in 1..1,000,000",
        ),
        (analysis_main, ["nope"], "invalid choice"),
        (interleave_main, ["demo", "--seed", "-1"], "argument --seed: must be >= 0"),
        (interleave_main, ["demo", "--impressions", "999999999999"], "--impressions"),
        (simulations_main, ["run", "x", "--seed", "-1"], "argument --seed: must be >= 0"),
        (simulations_main, ["run", "x", "--users", "99999999999999"], "--users"),
        (serving_main, ["--port", "x"], "argument --port"),
        (
            rankers_main,
            ["index", "--model", "m", "--corpus", "c", "--neighbours", "100000000"],
            "--neighbours",
        ),
    ],
)
def test_usage_errors_are_one_line(
    main: Callable[[Sequence[str]], int],
    argv: list[str],
    words: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert words in err
