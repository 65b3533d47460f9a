"""The installed ``faceid`` entry point (``cli.main``): usage errors raised inside a command
are a usage message and exit code 2, not a traceback."""

from __future__ import annotations

import sys

import pytest

from identity_service.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train-attributes", "--actions", "mood"], "unknown head(s) ['mood']"),
        (["find", "--aggregate", "median", "x.jpg"], "aggregate must be max or mean"),
        (["find", "-c", "staff"], "give a probe image or --embedding"),
        (["no-such-verb"], "No such command"),
    ],
)
def test_usage_errors_exit_2_with_a_message(argv, message, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["faceid", *argv])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
