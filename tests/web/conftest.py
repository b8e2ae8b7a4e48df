"""What every test of the web app shares."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from campaigns.people import staff


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Real argon2id, at the smallest cost: the tests sign in hundreds of times.
    monkeypatch.setattr(staff, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
