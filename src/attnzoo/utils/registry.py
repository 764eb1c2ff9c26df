"""The one registry class: names to things (model factories, datasets), each name once."""

from __future__ import annotations

from typing import Generic, Iterator, Optional, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → item map that refuses a second item under one name and, for an unknown name,
    raises ``ValueError`` listing the valid ones: ``unknown {kind} 'x'; valid names: a, b``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: Optional[T] = None):
        """``register(name, item)``, or ``@register(name)`` as a decorator; returns the item."""
        def add(value: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = value
            return value
        return add(item) if item is not None else add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


