"""What the generated encoders and decoders call at run time: varints the slow way, range and type
errors, and the bridges to fastavro for what the generated code leaves to it.

Varints are the costly part in Python: lengths under 4096 come from a table, and the upper bytes of
large longs (epoch-millis timestamps need 6 bytes) from small caches, both ways.
"""

from __future__ import annotations

import datetime
from io import BytesIO
from typing import Any

try:  # the compiled (Cython) fastavro: write into a bytearray, read from a file object
    # private Cython entry points, left out of fastavro's stubs: the codec calls them to skip the public wrappers
    from fastavro._read import _read_data as _cy_read_data  # type: ignore[attr-defined]
    from fastavro._write import write_data as _cy_write_data  # type: ignore[attr-defined]

    fastavro_read = _cy_read_data
except ImportError:  # pragma: no cover - pure-Python fastavro (no wheel for this platform)
    from fastavro._read_py import read_data as _py_read_data
    from fastavro._write_py import write_data as _py_write_data
    from fastavro.io.binary_decoder import BinaryDecoder
    from fastavro.io.binary_encoder import BinaryEncoder

    _cy_write_data = None

    def fastavro_read(fo: Any, writer: Any, named: Any, reader: Any = None, options: Any = None) -> Any:
        return _py_read_data(BinaryDecoder(fo), writer, named, reader, options or {})


INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1
LONG_MIN, LONG_MAX = -(1 << 63), (1 << 63) - 1
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
TIMESTAMP_UNITS = {
    "long-timestamp-millis": datetime.timedelta(milliseconds=1),
    "long-timestamp-micros": datetime.timedelta(microseconds=1),
}
# More items than this in one array/map block of zero-byte values is taken for corrupt input.
MAX_EMPTY_ITEMS = 1 << 24
FASTAVRO_WRITE_OPTIONS: dict[str, bool] = {
    "strict": False,
    "strict_allow_default": False,
    "disable_tuple_notation": False,
}
FASTAVRO_READ_OPTIONS: dict[str, Any] = {}


def varint(z: int) -> bytes:
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


# Varint bytes of zig-zag(n) for the small non-negative numbers that lengths, counts and indexes are.
LEN: tuple[bytes, ...] = tuple(varint(n << 1) for n in range(1 << 12))
LEN_CACHED = len(LEN)

# Large longs (timestamps above all) are written as their low 14 bits, two bytes that both carry the
# continuation bit, then the varint of the rest; the rest changes rarely (every 8 s for epoch millis),
# so its bytes are cached. LOW14[2 * n : 2 * n + 2] are the two low bytes for n.
LOW14 = b"".join(bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80)) for n in range(1 << 14))
HIGH_BYTES: dict[int, bytes] = {}
HIGH_VALUES: dict[bytes, int] = {}  # the other way: a 4-byte varint tail -> its value
HIGH_CACHE_SIZE = 4096


def wlen(n: int) -> bytes:
    return varint(n << 1)


def wlong(out: bytearray, v: int) -> None:
    if not LONG_MIN <= v <= LONG_MAX:
        raise ValueError(f"{v} is out of range for an Avro long (64-bit)")
    z = (v << 1) ^ (v >> 63)
    if z < 0x4000:
        out += varint(z)
        return
    high = z >> 14
    tail = HIGH_BYTES.get(high)
    if tail is None:
        tail = varint(high)
        if len(HIGH_BYTES) >= HIGH_CACHE_SIZE:
            HIGH_BYTES.clear()
        HIGH_BYTES[high] = tail
    low = (z & 0x3FFF) << 1
    out += LOW14[low : low + 2]
    out += tail


def wint(out: bytearray, v: int) -> None:
    if not INT_MIN <= v <= INT_MAX:
        raise ValueError(f"{v} is out of range for an Avro int (32-bit)")
    out += varint((v << 1) ^ (v >> 63))


def not_bool(v: object) -> None:
    raise TypeError(f"expected a bool, got {type(v).__name__}")


def not_null(v: object) -> None:
    raise TypeError(f"expected None, got {type(v).__name__}")


def bad_fixed(v: object, size: int) -> None:
    raise ValueError(f"expected {size} bytes, got {len(v) if hasattr(v, '__len__') else type(v).__name__}")


def fastavro_write(out: bytearray, datum: Any, schema: Any, named: dict[str, Any]) -> None:
    if _cy_write_data is not None:
        _cy_write_data(out, datum, schema, named, "", FASTAVRO_WRITE_OPTIONS)
    else:  # pragma: no cover
        buffer = BytesIO()
        _py_write_data(BinaryEncoder(buffer), datum, schema, named, "", FASTAVRO_WRITE_OPTIONS)
        out += buffer.getvalue()


def rlong(data: bytes, pos: int, b: int) -> tuple[int, int]:
    """The rest of a varint whose first byte ``b`` (already read) had the continuation bit set."""
    b2 = data[pos]
    if b2 < 0x80:
        n = (b & 0x7F) | (b2 << 7)
        return (n >> 1) ^ -(n & 1), pos + 1
    high = HIGH_VALUES.get(data[pos + 1 : pos + 5])
    if high is not None:  # a 6-byte varint whose last 4 bytes were seen before
        n = (b & 0x7F) | ((b2 & 0x7F) << 7) | (high << 14)
        return (n >> 1) ^ -(n & 1), pos + 5
    start = pos
    n = b & 0x7F
    shift = 7
    while True:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise ValueError("a varint runs past 10 bytes")
    if pos - start == 5:
        if len(HIGH_VALUES) >= HIGH_CACHE_SIZE:
            HIGH_VALUES.clear()
        HIGH_VALUES[data[start + 1 : pos]] = n >> 14
    return (n >> 1) ^ -(n & 1), pos


def rlen(data: bytes, pos: int, b: int) -> tuple[int, int]:
    n, pos = (b >> 1) ^ -(b & 1), pos
    if b & 0x80:
        n, pos = rlong(data, pos, b)
    if n < 0:
        raise ValueError(f"negative length {n}")
    return n, pos


def rcount(data: bytes, pos: int, b: int, item_min_size: int) -> tuple[int, int]:
    """A block count of an array or map; a negative count is followed by the block's size in bytes."""
    n, pos = (b >> 1) ^ -(b & 1), pos
    if b & 0x80:
        n, pos = rlong(data, pos, b)
    if n < 0:
        n = -n
        b = data[pos]
        pos += 1
        if b & 0x80:
            _, pos = rlong(data, pos, b)
    if item_min_size and n * item_min_size > len(data) - pos:
        raise ValueError(f"a block of {n} items cannot fit in the {len(data) - pos} bytes left")
    if n > MAX_EMPTY_ITEMS:
        raise ValueError(f"a block of {n} items is larger than {MAX_EMPTY_ITEMS}")
    return n, pos


def bad_index(what: str, index: int) -> None:
    raise ValueError(f"{what} index {index} is out of range")


def check_end(pos: int, size: int) -> None:
    if pos > size:
        raise EOFError(f"the Avro body ends early: {size} bytes, the record needs more")
    raise ValueError(f"{size - pos} bytes are left over after the record ({size} bytes in all)")
