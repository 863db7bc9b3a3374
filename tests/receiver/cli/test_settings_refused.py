"""A setting the service cannot use stops a command with what to change, not a traceback."""

from __future__ import annotations

import pytest

from receiver.cli import main


@pytest.mark.parametrize(("env", "said"), [
    ({"RETENTION_MINUTES": "3"}, "RETENTION_MINUTES: Input should be greater than or equal to 10 (given '3')"),
    ({"REDIS_CLUSTER": "true"}, "REDIS_CLUSTER needs REDIS_URL"),
])
def test_a_setting_that_cannot_be_used_is_named_and_the_command_exits_2(env, said, monkeypatch, capsys) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("the settings cannot be used:") and said in err
    assert "Traceback" not in err
