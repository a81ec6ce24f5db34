"""Logical types as the codec applies them: fastavro's own conversion functions, keyed ``<type>-<logical>``."""

from __future__ import annotations

from fastavro.logical_readers import LOGICAL_READERS
from fastavro.logical_writers import LOGICAL_WRITERS

from schemas.model import AvroType, Fixed, Primitive

__all__ = ["LOGICAL_READERS", "LOGICAL_WRITERS", "logical_key"]


def logical_key(schema: AvroType) -> str | None:
    """``long-timestamp-millis``, ``bytes-decimal`` ...: the key of fastavro's conversion tables, or None.

    Any logical type name counts, even one fastavro has no function for or an invalid decimal, as with
    fastavro itself.
    """
    if isinstance(schema, Primitive) and schema.logical is not None:
        return f"{schema.name}-{schema.logical.name}"
    if isinstance(schema, Fixed) and schema.logical is not None:
        return f"fixed-{schema.logical.name}"
    return None
