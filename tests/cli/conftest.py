"""Every CLI test gets its own $XDG_CONFIG_HOME, so client state never leaks between tests or into ~."""

import pytest


@pytest.fixture(autouse=True)
def config_home(tmp_path, monkeypatch):
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.delenv("SPL_URL", raising=False)
    monkeypatch.delenv("SPL_API_KEY", raising=False)
    return home / "spl"
