"""Fast positional constructors for frozen slotted dataclasses on the per-uplink path. Pure.

Writing slots through their descriptors is ~2.5x faster than a frozen `__init__` (hil/bench/core).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar, cast

T = TypeVar("T")


def fast_constructor(cls: type[T]) -> Callable[..., T]:
    """`new(*field_values)` for the frozen, slotted dataclass `cls`, in field order.

    Skips `__post_init__`: only for values already valid (a parsed frame, a validated session
    with a new counter).
    """
    names = [f.name for f in fields(cast(Any, cls))]
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    for i, name in enumerate(names):
        ns[f"_s{i}"] = cls.__dict__[name].__set__
    body = "".join(f"    _s{i}(o, {name})\n" for i, name in enumerate(names))
    src = f"def new({', '.join(names)}):\n    o = _new(_cls)\n{body}    return o\n"
    exec(src, ns)  # noqa: S102 - source built from the class's own field names, as dataclasses does
    return cast(Callable[..., T], ns["new"])
