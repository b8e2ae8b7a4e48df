"""An iterator read by a thread of its own, a few items ahead of its consumer.

On PostgreSQL the patient import parses the next batch of rows while the server
writes the last one: parsing is Python and holds the GIL, while a write mostly waits
on the server, which lets the other thread run. (Not on SQLite: its writes are this
process's own CPU, and two threads taking turns at the GIL made the import slower.)
Items, the end and any exception arrive in order, as the iterator itself would give
them; ``close()`` stops the thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

# How often a reader whose consumer is full looks whether it was closed.
_POLL_S = 0.1


class ReadAhead(Generic[T]):
    """``for item in ReadAhead(source): ...``, then ``close()`` (also after an error)."""

    def __init__(self, source: Iterable[T], depth: int = 2, name: str = "read-ahead") -> None:
        self._source = source
        self._queue: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._started = False

    def __iter__(self) -> Iterator[T]:
        if self._started:
            raise RuntimeError("a ReadAhead is read once")
        self._started = True
        self._thread.start()
        while True:
            kind, value = self._queue.get()
            if kind == "item":
                yield value  # type: ignore[misc]
            elif kind == "error":
                assert isinstance(value, BaseException)
                raise value
            else:
                return

    def close(self) -> None:
        """Stop reading (at the next item) and wait for the thread to end."""
        self._closed.set()
        if self._started:
            self._thread.join()

    def _read(self) -> None:
        items = iter(self._source)
        try:
            for item in items:
                if not self._put("item", item):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            self._put("error", e)
        else:
            self._put("end", None)
        finally:
            if isinstance(items, Generator):
                items.close()  # a generator left early lets go of its file now

    def _put(self, kind: str, value: object) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put((kind, value), timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False
