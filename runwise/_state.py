"""A safe, structured encoding of the sources' resume states (`Run.resume`), for the disk cache.

A state is a tree of a few kinds of values, and nothing else is encoded or decoded:

- None, bool, int, str, float (NaN and infinities too; numpy scalars are stored as Python numbers);
- list, tuple, dict (any keys of these kinds), bytes, `pathlib.Path`;
- numpy arrays of bool, int, uint or float dtype, stored as members of the cache's `.npz` file (a
  list of 1-D arrays of one dtype as one member, split again on reading; an array referred to
  twice, or a large one equal to one stored already, is stored once);
- instances of the classes in ALLOWED (the sources' own state classes), by their fields.

`encode` gives a JSON-able tree (orjson) and the arrays to store beside it; `decode` rebuilds the
state from them. Decoding imports nothing but the modules ALLOWED names, calls no constructor but
`object.__new__`-style creation of those classes, and never unpickles: arrays are read with
`allow_pickle=False`. Anything it does not recognise (another tag, a class not allowed, a class
whose fields changed since the state was written, an array of another dtype) raises StateError,
and the cache treats the entry as unusable. A decoded state is still only a hint: the sources
check the files against it (`_growth.FileMark`) before reading on from it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

# module:qualname of every class a state may hold. Adding a class here, or changing the fields of
# one, needs no format bump: each object records a digest of its class's fields (`signature`).
ALLOWED = frozenset({
    "runwise.parsers._growth:FileMark",
    "runwise.parsers.jsonl:_Resume",
    "runwise.parsers.jsonl:_Built",
    "runwise.parsers.jsonl_rows:Part",
    "runwise.parsers.jsonl_rows:Columns",
    "runwise.parsers.tensorboard.resume:TBResume",
    "runwise.parsers.tensorboard.resume:FileState",
    "runwise.parsers.tensorboard.events:EventColumns",
    "runwise.parsers.tensorboard.events:TagColumns",
    "runwise.parsers.tensorboard.tfrecord:FrameStats",
    "runwise.parsers.wandb.segment:Segment",
    "runwise.parsers.wandb.live:LogState",
    "runwise.parsers.wandb.live:Others",
    "runwise.parsers.wandb.columns:Columns",
    "runwise.parsers.wandb.log:Cursor",
    "runwise.parsers.wandb.log:Damage",
})
DTYPE_KINDS = "biuf"  # bool, signed and unsigned integers, floats
PREFIX = "r:"  # npz member names of the arrays a state stores
SAME_BYTES = 64 * 1024  # arrays this large are compared with the stored ones, and stored once if equal
_PATH = type(Path())  # PosixPath or WindowsPath: no other Path class
_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class StateError(ValueError):
    """A value that may not be encoded, or an encoding that may not be decoded."""


def _name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _fields(cls: type) -> tuple[str, ...]:
    """The attributes an instance of `cls` keeps: its dataclass fields, else those a bare instance sets."""
    if dataclasses.is_dataclass(cls):
        return tuple(f.name for f in dataclasses.fields(cls))
    return tuple(vars(cls()))  # plain classes in ALLOWED build empty with no arguments


_SIGNATURES: dict[type, str] = {}


def signature(cls: type) -> str:
    """A digest of the class's fields (names, and annotations where it is a dataclass)."""
    sig = _SIGNATURES.get(cls)
    if sig is None:
        if dataclasses.is_dataclass(cls):
            shape: object = [(f.name, str(f.type)) for f in dataclasses.fields(cls)]
        else:
            shape = sorted(_fields(cls))
        sig = _SIGNATURES[cls] = hashlib.sha1(repr((_name(cls), shape)).encode()).hexdigest()[:12]
    return sig


def _allowed_class(name: str) -> type:
    if name not in ALLOWED:
        raise StateError(f"class {name!r} is not allowed in a resume state")
    module, _, qualname = name.partition(":")
    cls = getattr(importlib.import_module(module), qualname, None)
    if not isinstance(cls, type) or _name(cls) != name:
        raise StateError(f"class {name!r} is not found")
    return cls


# ---------------------------------------------------------------- encode


class _Encoder:
    def __init__(self, shared: Mapping[int, str]) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.seen: dict[int, str] = dict(shared)  # id(array) -> member that holds it
        self.keep: list[object] = []  # what `seen` refers to stays alive while encoding
        self.similar: dict[tuple[object, ...], list[str]] = {}  # a sample of an array's contents -> members

    def member(self, arr: np.ndarray) -> str:
        found = self.seen.get(id(arr))
        if found is not None:
            return found
        if arr.dtype.kind not in DTYPE_KINDS or arr.dtype.hasobject:
            raise StateError(f"an array of dtype {arr.dtype} may not be stored")
        self.keep.append(arr)
        sample = None
        if arr.nbytes >= SAME_BYTES:  # the same contents stored once (a JSONL log's keys share their line numbers)
            flat = arr.reshape(-1)
            sample = (arr.dtype.str, arr.shape, flat[:8].tobytes(), flat[-8:].tobytes(), flat[flat.size // 2].tobytes())
            for name in self.similar.get(sample, ()):
                if np.array_equal(self.arrays[name], arr):
                    self.seen[id(arr)] = name
                    return name
        name = f"{PREFIX}{len(self.arrays)}"
        self.arrays[name] = arr
        self.seen[id(arr)] = name
        if sample is not None:
            self.similar.setdefault(sample, []).append(name)
        return name

    def node(self, x: object) -> object:
        t = type(x)
        if x is None or t is bool or t is int or t is str:
            return x
        if t is float or isinstance(x, np.floating):
            f = float(x)  # type: ignore[arg-type]
            return f if math.isfinite(f) else {"~": "f", "v": repr(f)}
        if isinstance(x, np.bool_):
            return bool(x)
        if isinstance(x, np.integer):
            return int(x)
        if t is list:
            return self.list(x)  # type: ignore[arg-type]
        if t is tuple:
            return {"~": "t", "v": [self.node(v) for v in x]}  # type: ignore[attr-defined]
        if t is dict:
            d: dict[Any, Any] = x  # type: ignore[assignment]
            return {"~": "d", "k": [self.node(k) for k in d], "v": [self.node(v) for v in d.values()]}
        if t is bytes:
            return {"~": "b", "v": base64.b64encode(x).decode("ascii")}  # type: ignore[arg-type]
        if t is _PATH:
            return {"~": "p", "v": str(x)}
        if t is np.ndarray:
            return {"~": "a", "m": self.member(x)}  # type: ignore[arg-type]
        return self.object(x)

    def list(self, items: list[Any]) -> object:
        if len(items) > 1 and all(type(a) is np.ndarray and a.ndim == 1 for a in items):
            dtype = items[0].dtype
            if all(a.dtype == dtype for a in items):
                whole = np.concatenate(items)
                return {"~": "A", "m": self.member(whole), "n": [int(a.shape[0]) for a in items]}
        return [self.node(v) for v in items]

    def object(self, x: object) -> object:
        cls = type(x)
        name = _name(cls)
        if name not in ALLOWED:
            raise StateError(f"a {name} may not be stored in a resume state")
        names = _fields(cls)
        extra = set(getattr(x, "__dict__", {})) - set(names)
        if extra:
            raise StateError(f"a {name} has attributes beyond its fields: {sorted(extra)}")
        return {"~": "o", "c": name, "s": signature(cls), "f": {n: self.node(getattr(x, n)) for n in names}}


def encode(state: object, shared: Mapping[int, str] | None = None) -> tuple[object, dict[str, np.ndarray]]:
    """The tree and the arrays (npz member name -> array) that store `state`; StateError if it holds
    anything but the kinds of values this module allows.

    `shared` maps `id(array)` to an npz member stored anyway (a run's history): the state then
    refers to it instead of storing the array again. Keep those arrays alive meanwhile.
    """
    enc = _Encoder(shared or {})
    try:
        tree = enc.node(state)
    except RecursionError as exc:
        raise StateError("a resume state nested too deeply") from exc
    return tree, enc.arrays


# ---------------------------------------------------------------- decode


class _Decoder:
    def __init__(self, load: Callable[[str], np.ndarray]) -> None:
        self.load = load
        self.loaded: dict[str, np.ndarray] = {}

    def array(self, member: object) -> np.ndarray:
        if not isinstance(member, str):
            raise StateError("an array reference is not a member name")
        arr = self.loaded.get(member)
        if arr is None:
            arr = self.load(member)
            if type(arr) is not np.ndarray or arr.dtype.kind not in DTYPE_KINDS or arr.dtype.hasobject:
                raise StateError(f"member {member!r} is not an array of numbers")
            self.loaded[member] = arr
        return arr

    def node(self, x: object) -> Any:
        if x is None or type(x) in (bool, int, float, str):
            return x
        if type(x) is list:
            return [self.node(v) for v in x]
        if type(x) is not dict:
            raise StateError(f"unexpected {type(x).__name__} in a resume state")
        tag = x.get("~")
        if tag == "f":
            v = x.get("v")
            if not isinstance(v, str) or v not in _FLOATS:
                raise StateError(f"not a special float: {v!r}")
            return _FLOATS[v]
        if tag == "t":
            return tuple(self.node(v) for v in _list(x.get("v")))
        if tag == "d":
            keys, values = _list(x.get("k")), _list(x.get("v"))
            if len(keys) != len(values):
                raise StateError("a dict with more keys than values")
            try:
                return {self.node(k): self.node(v) for k, v in zip(keys, values, strict=True)}
            except TypeError as exc:  # an unhashable key
                raise StateError(str(exc)) from exc
        if tag == "b":
            v = x.get("v")
            if not isinstance(v, str):
                raise StateError("bytes not encoded as text")
            try:
                return base64.b64decode(v.encode("ascii"), validate=True)
            except (ValueError, UnicodeEncodeError) as exc:
                raise StateError("bytes not base64") from exc
        if tag == "p":
            v = x.get("v")
            if not isinstance(v, str):
                raise StateError("a path not encoded as text")
            return Path(v)
        if tag == "a":
            return self.array(x.get("m"))
        if tag == "A":
            whole = self.array(x.get("m"))
            lengths = _list(x.get("n"))
            if whole.ndim != 1 or not all(type(n) is int and n >= 0 for n in lengths) or sum(lengths) != len(whole):
                raise StateError("a packed list of arrays does not add up")
            return np.split(whole, np.cumsum(lengths[:-1])) if lengths else []
        if tag == "o":
            return self.object(x)
        raise StateError(f"unknown tag {tag!r} in a resume state")

    def object(self, x: dict[str, Any]) -> object:
        name = x.get("c")
        if not isinstance(name, str):
            raise StateError("an object without a class name")
        cls = _allowed_class(name)
        if x.get("s") != signature(cls):
            raise StateError(f"{name} has other fields than when the state was written")
        values = x.get("f")
        if not isinstance(values, dict) or set(values) != set(_fields(cls)):
            raise StateError(f"the fields of a stored {name} are not its class's")
        obj: object = object.__new__(cls)
        for field, value in values.items():
            object.__setattr__(obj, field, self.node(value))  # frozen dataclasses too, as their __init__ does
        return obj


def _list(v: object) -> list[Any]:
    if type(v) is not list:
        raise StateError("expected a list in a resume state")
    return v


def decode(tree: object, load: Callable[[str], np.ndarray]) -> Any:
    """The state `encode` stored as `tree`; `load(member)` gives a stored array. StateError if the
    tree or an array is not one `encode` could have written (of classes as they are now)."""
    try:
        return _Decoder(load).node(tree)
    except RecursionError as exc:
        raise StateError("a resume state nested too deeply") from exc
