"""Embedding vectors without numpy: the memory function's vector type, its checks, and pgvector's ``vector`` type for
psycopg.

A vector is an ``array.array('f')``: float32 values, as pgvector stores them (``vector`` is float4), compact, and
convertible without copies element by element (``tobytes``/``frombytes``). numpy is not needed on any path of the
memory function except the local ONNX model (:mod:`soorma.functions.memory.embeddings.local`, which converts its
rows with :func:`to_vector`), so the function deployed with Amazon Bedrock embeddings ships without it.

:func:`register` teaches a psycopg connection pgvector's ``vector`` type without pgvector-python (whose adapter
imports numpy): parameters that are ``array.array`` (or, when the caller has numpy, ``numpy.ndarray``: registered by
name, so numpy is never imported here) are sent as ``vector`` in pgvector's binary format, and ``vector`` columns
come back as ``array('f')``. The binary layout is pgvector's ``vector_send``/``vector_recv`` (``src/vector.c``): an
int16 dimension count, an int16 that must be 0, then that many float4, all big-endian. The text format
(``[x,y,...]``) is registered too, for results fetched as text (psycopg's default).
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections.abc import Iterable
from typing import Any

from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format

#: The memory function's vector type: ``array('f')`` (float32 values).
Vector = array

#: pgvector's limit for a stored ``vector``.
MAX_DIMENSIONS = 16000
#: The norm below which a vector is not scaled up (as ``torch.nn.functional.normalize``'s ``eps``).
NORM_EPSILON = 1e-12

_HEADER = struct.Struct(">HH")
_SWAP = sys.byteorder == "little"  # pgvector's binary format is big-endian; array('f') is native


def to_vector(values: Any) -> Vector:
    """``values`` as an ``array('f')``: an ``array('f')`` is returned as is; a one-dimensional numpy array (or
    anything with numpy's ``astype``/``tobytes``) is converted by its bytes, without importing numpy; any other
    iterable of numbers element by element (each rounded to the nearest float32, as numpy's ``astype`` does; a value
    beyond float32's range becomes an infinity, which :func:`is_finite` reports). Raises ``TypeError`` for a string
    or a non-numeric element and ``ValueError`` for a multi-dimensional array."""
    if isinstance(values, array) and values.typecode == "f":
        return values
    if isinstance(values, (str, bytes)):
        raise TypeError("a vector is a sequence of numbers, not a string")
    if hasattr(values, "astype") and hasattr(values, "tobytes") and hasattr(values, "ndim"):
        if values.ndim != 1:
            raise ValueError(f"a vector is one-dimensional, not {values.ndim}-dimensional")
        out = array("f")
        out.frombytes(values.astype("=f4").tobytes())
        return out
    return array("f", values)


def norm(vector: Iterable[float]) -> float:
    """The Euclidean (L2) norm, computed in double precision."""
    return math.hypot(*vector)


def normalise(vector: Iterable[float]) -> Vector:
    """``vector`` scaled to unit length (L2; the norm clamped at :data:`NORM_EPSILON`, so a zero vector stays
    zero), as float32. The division is done in double precision and rounded once to float32."""
    values = vector if isinstance(vector, array) else array("f", vector)
    scale = max(math.hypot(*values), NORM_EPSILON)
    return array("f", [x / scale for x in values])


def is_finite(vector: Iterable[float]) -> bool:
    """Whether every value is finite (pgvector refuses NaN and infinities)."""
    return all(map(math.isfinite, vector))


def is_zero(vector: Iterable[float]) -> bool:
    """Whether every value is zero (cosine distance is undefined for the zero vector)."""
    return not any(vector)


def dot(a: Iterable[float], b: Iterable[float]) -> float:
    """The dot product (the cosine similarity of two unit vectors), computed in double precision."""
    return math.sumprod(a, b) if hasattr(math, "sumprod") else math.fsum(x * y for x, y in zip(a, b))


# -- pgvector's wire formats -----------------------------------------------------------------------------------------


def to_binary(vector: Any) -> bytes:
    """pgvector's binary ``vector`` (``vector_recv``): int16 dim, int16 0, dim float4, big-endian."""
    values = to_vector(vector)
    if not 1 <= len(values) <= MAX_DIMENSIONS:
        raise ValueError(f"a vector has 1 to {MAX_DIMENSIONS} dimensions, not {len(values)}")
    if _SWAP:
        values = array("f", values)  # a copy: the caller's vector is left as it was
        values.byteswap()
    return _HEADER.pack(len(values), 0) + values.tobytes()


def from_binary(data: bytes | bytearray | memoryview) -> Vector:
    """An ``array('f')`` from pgvector's binary ``vector`` (``vector_send``)."""
    dim, unused = _HEADER.unpack_from(data)
    if unused != 0:
        raise ValueError("pgvector binary vector: the unused header field is not zero")
    out = array("f")
    out.frombytes(bytes(data[_HEADER.size : _HEADER.size + 4 * dim]))
    if len(out) != dim:
        raise ValueError(f"pgvector binary vector: {dim} dimensions announced, {len(out)} sent")
    if _SWAP:
        out.byteswap()
    return out


def to_text(vector: Any) -> bytes:
    """pgvector's text ``vector``: ``[x,y,...]`` (each float32 written exactly: ``repr`` of its double value)."""
    values = to_vector(vector)
    return ("[" + ",".join(map(repr, values)) + "]").encode("ascii")


def from_text(data: bytes | bytearray | memoryview) -> Vector:
    """An ``array('f')`` from pgvector's text ``vector`` (``[x,y,...]``)."""
    text = bytes(data).decode("ascii").strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError(f"not a pgvector text vector: {text[:40]!r}")
    return array("f", map(float, text[1:-1].split(",")))


class _BinaryDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        return to_binary(obj)


class _TextDumper(Dumper):
    format = Format.TEXT

    def dump(self, obj: Any) -> bytes:
        return to_text(obj)


class _BinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data: Any) -> Vector:
        return from_binary(data)


class _TextLoader(Loader):
    format = Format.TEXT

    def load(self, data: Any) -> Vector:
        return from_text(data)


#: Python types sent as ``vector``: ours, and numpy's by name (registered without importing numpy).
DUMPED_TYPES: tuple[type | str, ...] = (array, "numpy.ndarray")


def register(context: Any, info: Any) -> None:
    """Register the ``vector`` dumpers and loaders on ``context`` (a connection or cursor; ``info`` is the
    ``vector`` type's :class:`psycopg.types.TypeInfo`). Binary is registered last, so it is what ``%s`` uses."""
    info.register(context)
    adapters = context.adapters
    text_dumper = type("VectorTextDumper", (_TextDumper,), {"oid": info.oid})
    binary_dumper = type("VectorBinaryDumper", (_BinaryDumper,), {"oid": info.oid})
    for cls in DUMPED_TYPES:
        adapters.register_dumper(cls, text_dumper)
        adapters.register_dumper(cls, binary_dumper)
    adapters.register_loader(info.oid, _TextLoader)
    adapters.register_loader(info.oid, _BinaryLoader)
