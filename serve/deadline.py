"""A request's time limit: what is left of it, and a 504 when it is spent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

from serve.errors import ApiError

__all__ = ["Deadline"]

T = TypeVar("T")


class Deadline:
    """The time a request has left; expiry is a 504."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self._at - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left

    def expired(self) -> ApiError:
        return ApiError(504, f"the request took longer than its limit of {self.seconds:g} s", kind="timeout")

    async def run(self, awaitable: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(awaitable, self.remaining())
        except asyncio.TimeoutError:
            raise self.expired() from None
