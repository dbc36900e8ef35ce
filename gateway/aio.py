"""Small asyncio helpers shared by the gateway's long-running tasks."""

from __future__ import annotations

import asyncio

__all__ = ["raise_if_cancelling", "wait_event"]


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that a timeout turned into ``TimeoutError``, or that a library
    dropped.

    On Python 3.11, a task cancelled just as its ``asyncio.timeout`` expires sees only
    ``TimeoutError``, and ``asyncio.wait_for`` (pymodbus awaits every answer through it) returns
    a result that arrived in the same loop step as a cancellation and drops the cancellation. A
    loop that goes on would then never stop. Call this in every ``except TimeoutError`` and
    after every library await of a task that must stop when cancelled.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``event``; True if it was set. Never eats a cancel."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        raise_if_cancelling()
        return False
    return True
