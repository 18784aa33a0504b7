"""Process-wide counters: what `status`, `doctor` and Prometheus read.

Counters are (name, labels) -> int. Cheap enough for the per-frame path (one dict update).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator

LabelKey = tuple[tuple[str, str], ...]


class Counters:
    def __init__(self) -> None:
        self._values: defaultdict[tuple[str, LabelKey], int] = defaultdict(int)
        self._lock = threading.Lock()

    def inc(self, name: str, n: int = 1, /, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())) if labels else ())
        with self._lock:
            self._values[key] += n

    @staticmethod
    def key(name: str, /, **labels: str) -> tuple[str, LabelKey]:
        """A counter's key, made once by a per-frame caller and passed to `add`."""
        return (name, tuple(sorted(labels.items())))

    def add(self, key: tuple[str, LabelKey], n: int = 1) -> None:
        with self._lock:
            self._values[key] += n

    def get(self, name: str, **labels: str) -> int:
        """Sum of `name` over every label set that matches the given labels."""
        want = set(labels.items())
        with self._lock:
            return sum(v for (n, lk), v in self._values.items() if n == name and want <= set(lk))

    def items(self) -> Iterator[tuple[str, dict[str, str], int]]:
        with self._lock:
            snap = list(self._values.items())
        for (name, lk), v in sorted(snap):
            yield name, dict(lk), v

    def snapshot(self) -> dict[str, int]:
        """Flat view for JSON: `name{k=v,...}` -> value."""
        out: dict[str, int] = {}
        for name, labels, v in self.items():
            key = name + (
                "{" + ",".join(f"{k}={val}" for k, val in labels.items()) + "}" if labels else ""
            )
            out[key] = v
        return out

    def bad_input(self, reason: str, **labels: str) -> None:
        self.inc("bad_input", reason=reason, **labels)

    def internal_error(self, where: str) -> None:
        self.inc("internal_error", where=where)


# One per process; the daemon hands it to every shell component.
COUNTERS = Counters()
