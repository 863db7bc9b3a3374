"""Settings for tests: copies with a few fields changed."""

from __future__ import annotations

from receiver.settings import Settings


def with_settings(settings: Settings, **overrides) -> Settings:
    """A validated copy (model_copy would skip validation, leaving e.g. tokens as plain str)."""
    return Settings(_env_file=None, **{**settings.model_dump(), **overrides})
