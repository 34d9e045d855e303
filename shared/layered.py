"""An ordered mapping made of another one (its origin) and the entries changed since.

The writer's dataset changes one record per apply. Copying a category's mapping per apply would
cost the category; a `Layered` shares its origin and keeps only what changed. The origin never
changes, so an entry that is not in `changed` is the origin's own: whatever was made of it once
(its encoded bytes in the last published file) is still right, and only `changed` needs work.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

V = TypeVar("V")


class MadeWhenAsked(Mapping[str, V]):
    """A mapping that holds its keys (in order, each with what it needs to make its value) and
    makes a value only when it is asked for: the origins the writer loads hold names, not data."""

    def __init__(self, keys: dict[str, Any]) -> None:
        self._names = keys

    @abstractmethod
    def __getitem__(self, key: str) -> V: ...

    def __contains__(self, key: object) -> bool:
        return key in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class Layered(Mapping[str, V]):
    """`origin` with the entries in `changed` set or added; keys in `keys` order."""

    __slots__ = ("_keys", "changed", "origin")

    def __init__(
        self,
        origin: Mapping[str, V],
        keys: dict[str, None] | None = None,
        changed: dict[str, V] | None = None,
    ) -> None:
        self.origin = origin
        self._keys = keys  # None: the origin's (no copy of them until a key comes or goes)
        self.changed: Mapping[str, V] = changed or {}

    @classmethod
    def of(cls, mapping: Mapping[str, V]) -> Layered[V]:
        return mapping if isinstance(mapping, Layered) else cls(mapping)

    def _all(self) -> Mapping[str, object]:
        return self.origin if self._keys is None else self._keys

    def __getitem__(self, key: str) -> V:
        if key not in self._all():
            raise KeyError(key)
        if key in self.changed:
            return self.changed[key]
        return self.origin[key]

    def __contains__(self, key: object) -> bool:
        return key in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"Layered({len(self)} entries, {len(self.changed)} changed)"

    def set(self, key: str, value: V) -> Layered[V]:
        """A copy with `key` set to `value`: in place when it exists, else last."""
        keys = self._keys if key in self else {**dict.fromkeys(self._all()), key: None}
        return Layered(self.origin, keys, {**self.changed, key: value})

    def without(self, key: str) -> Layered[V]:
        """A copy without `key`; KeyError when it is not there."""
        if key not in self:
            raise KeyError(key)
        keys = dict.fromkeys(self._all())
        del keys[key]
        return Layered(self.origin, keys, {k: v for k, v in self.changed.items() if k != key})
