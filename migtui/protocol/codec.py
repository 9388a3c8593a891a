"""Typed messages to JSON and back, checked against their dataclass fields.

A message is a frozen dataclass; :func:`to_json` writes its fields (enums by value,
nested dataclasses as objects) and :func:`from_json` builds it again, checking each
field against its annotation: a peer that sends ``"version": true`` or a string where a
number belongs gets a :class:`ProtocolError` naming the field, never a half-built
message. Unknown fields are ignored (a newer peer may add some); a missing field takes
its default, or is an error when it has none. ``Json`` fields (QMP's own payloads, the
``status --json`` objects) pass through as they are: they are JSON by definition.
Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar, Union

from .framing import ProtocolError

T = TypeVar("T")
_Reader = Callable[[Any, "str | None"], Any]  # (data, where: None while not named)
_readers: dict[Any, _Reader] = {}


_PLAIN = frozenset({str, int, float, bool, type(None)})
_field_names: dict[type, tuple[str, ...] | None] = {}  # None: not a dataclass (a list, an enum...)


def to_json(value: Any) -> Any:
    """``value`` as plain JSON data (dataclasses as objects, enums by value)."""
    cls = type(value)
    if cls in _PLAIN:  # most values: checked first (the engine encodes every poll's messages)
        return value
    if cls in _field_names:
        names = _field_names[cls]
    else:
        names = _field_names[cls] = (tuple(f.name for f in dataclasses.fields(cls))
                                     if dataclasses.is_dataclass(cls) else None)
    if names is not None:
        return {name: to_json(getattr(value, name)) for name in names}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(to_json(v) for v in value)
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def from_json(cls: type[T], data: Any, where: str = "") -> T:
    """A ``cls`` from JSON ``data``; ProtocolError (naming the field) if it does not fit."""
    reader = _reader(cls)
    try:
        # Read without naming each field and item on the way (where=None): building those
        # paths was most of the cost of a view's decoding. Data that does not fit is read
        # again, naming them, for the error.
        result: T = reader(data, None)
    except ProtocolError:
        result = reader(data, where or cls.__name__)
    return result


def _reader(hint: Any) -> _Reader:
    reader = _readers.get(hint)
    if reader is None:
        reader = _readers[hint] = _make_reader(hint)
    return reader


def _fail(where: str | None, expected: str, data: Any) -> typing.NoReturn:
    shown = repr(data)
    raise ProtocolError(f"{where}: expected {expected}, got {shown[:60]}")


def _make_reader(hint: Any) -> _Reader:
    if hint is Any:
        return lambda data, where: data
    if hint is type(None):
        return lambda data, where: data if data is None else _fail(where, "null", data)
    if hint is bool:
        return lambda data, where: data if isinstance(data, bool) else _fail(where, "true or false", data)
    if hint is int:
        return lambda data, where: (data if isinstance(data, int) and not isinstance(data, bool)
                                    else _fail(where, "an integer", data))
    if hint is float:
        return lambda data, where: (float(data) if isinstance(data, (int, float)) and not isinstance(data, bool)
                                    else _fail(where, "a number", data))
    if hint is str:
        return lambda data, where: data if isinstance(data, str) else _fail(where, "a string", data)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_reader(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_reader(hint)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return _union_reader(args)
    if origin is typing.Literal:
        allowed = args
        return lambda data, where: data if data in allowed else _fail(where, f"one of {list(allowed)}", data)
    if origin in (list, tuple, frozenset):
        item = _reader(args[0]) if args else _reader(Any)
        build: Callable[[Any], Any] = {list: list, tuple: tuple, frozenset: frozenset}[origin]

        def read_list(data: Any, where: str | None) -> Any:
            if not isinstance(data, list):
                _fail(where, "a list", data)
            if where is None:
                return build([item(v, None) for v in data])
            return build(item(v, f"{where}[{i}]") for i, v in enumerate(data))
        return read_list
    if origin is dict:
        value = _reader(args[1]) if len(args) == 2 else _reader(Any)

        def read_dict(data: Any, where: str | None) -> Any:
            if not isinstance(data, dict):
                _fail(where, "an object", data)
            return {str(k): value(v, None if where is None else f"{where}.{k}") for k, v in data.items()}
        return read_dict
    raise TypeError(f"no JSON reader for {hint!r}")  # a message field of a type this codec lacks: a bug


def _enum_reader(cls: type[enum.Enum]) -> _Reader:
    values = [m.value for m in cls]

    def read(data: Any, where: str | None) -> Any:
        try:
            return cls(data)
        except ValueError:
            _fail(where, f"one of {values}", data)
    return read


def _union_reader(options: tuple[Any, ...]) -> _Reader:
    readers = [_reader(o) for o in options if o is not type(None)]
    nullable = type(None) in options

    def read(data: Any, where: str | None) -> Any:
        if data is None and nullable:
            return None
        errors = []
        for reader in readers:
            try:
                return reader(data, where)
            except ProtocolError as err:
                errors.append(str(err))
        raise ProtocolError(errors[0] if errors else f"{where}: unexpected {data!r}")
    return read


def _dataclass_reader(cls: type) -> _Reader:
    hints = typing.get_type_hints(cls)
    fields = [(f, _reader(hints[f.name])) for f in dataclasses.fields(cls) if f.init]

    def read(data: Any, where: str | None) -> Any:
        if not isinstance(data, dict):
            _fail(where, "an object", data)
        values = {}
        for f, reader in fields:
            if f.name in data:
                values[f.name] = reader(data[f.name], None if where is None else f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ProtocolError(f"{where}: '{f.name}' is missing")
        return cls(**values)
    return read
