"""Running `python -m model` in the test process and reading how it failed."""

from __future__ import annotations

import pytest

from model.__main__ import USAGE_ERROR, main


def cli_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the command line expecting a refusal: exit status 2 and one `error:` line on stderr, returned."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == USAGE_ERROR
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: "), errors
    return errors[0]
