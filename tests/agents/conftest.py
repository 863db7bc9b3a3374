"""The fake Messages API every model test of the agents runs against."""

from __future__ import annotations

import pytest

from tests.support import fake_anthropic as fake


@pytest.fixture
async def api(aiohttp_server):
    api = await fake.start(aiohttp_server, fake.FakeMessagesAPI(default=fake.expert))
    yield api
    api.release()  # a `Held` reply still waiting ends before the server closes
