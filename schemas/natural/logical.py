"""Nodes for logical types: timestamps, local timestamps, date, time of day, uuid and decimal."""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from schemas.natural.nodes import Ctx, Node, json_kind, show
from schemas.natural.scalars import BytesNode, FixedNode

_UTC = UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_DAYS_SHIFT = date(1970, 1, 1).toordinal()
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?\Z")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_TIME = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")


class TimestampNode(Node):
    wrap_name = "long"
    json_types = frozenset({str, int})
    datum_types = frozenset({datetime, int})

    def __init__(self, logical: str, per_second: int, local: bool) -> None:
        self.display = f"long ({logical})"
        self.logical, self.per_second, self.local = logical, per_second, local
        self.unit = "milliseconds" if per_second == 1000 else "microseconds"
        self.epoch = _EPOCH_NAIVE if local else _EPOCH

    def load(self, value: Any, ctx: Ctx) -> Any:
        kind = type(value)
        if kind is int:
            return self._from_epoch(value, ctx)
        if kind is not str:
            ctx.fail(
                f"expected an ISO-8601 date-time string or epoch {self.unit} (Avro {self.logical}), "
                f"got {json_kind(value)}"
            )
            return None
        parsed = _parse_datetime(value)
        if parsed is None:
            ctx.fail(f"expected an ISO-8601 date-time like '2024-05-01T12:00:00Z', got {show(value)}")
            return None
        try:
            moment = parsed.replace(tzinfo=_UTC) if parsed.tzinfo is None else parsed.astimezone(_UTC)
        except OverflowError:
            ctx.fail("date-time out of range (years 1 to 9999 in UTC)")
            return None
        if self.local:
            moment = moment.replace(tzinfo=None)
        return self._truncate(moment)

    def _from_epoch(self, value: int, ctx: Ctx) -> datetime | None:
        try:
            if not _LONG_MIN <= value <= _LONG_MAX:
                raise OverflowError
            return self.epoch + timedelta(microseconds=value * (1_000_000 // self.per_second))
        except OverflowError:
            ctx.fail(f"epoch {self.unit} out of range (years 1 to 9999)")
            return None

    def _truncate(self, moment: datetime) -> datetime:
        if self.per_second == 1000:
            return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        return moment

    def dump(self, datum: Any) -> Any:
        if type(datum) is int:
            datum = self.epoch + timedelta(microseconds=datum * (1_000_000 // self.per_second))
        if datum.tzinfo is not None:
            datum = datum.astimezone(_UTC).replace(tzinfo=None)
        text = datum.isoformat(timespec=self.unit)
        return text if self.local else text + "Z"

    def accepts(self, datum: Any) -> bool:
        return isinstance(datum, datetime) or type(datum) is int


def _parse_datetime(text: str) -> datetime | None:
    text = text.upper()
    if not _DATETIME.match(text):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class DateNode(Node):
    wrap_name = "int"
    display = "int (date)"
    json_types = frozenset({str, int})
    datum_types = frozenset({date, datetime, int, str})

    def load(self, value: Any, ctx: Ctx) -> Any:
        if type(value) is int:
            try:
                return date.fromordinal(value + _DAYS_SHIFT)
            except (ValueError, OverflowError):
                ctx.fail("days since 1970-01-01 out of range (years 1 to 9999)")
                return None
        if type(value) is not str:
            ctx.fail(f"expected a date 'YYYY-MM-DD' or days since 1970-01-01 (Avro date), got {json_kind(value)}")
            return None
        try:
            if not _DATE.match(value):
                raise ValueError
            return date.fromisoformat(value)
        except ValueError:
            ctx.fail(f"expected a date like '2024-05-01', got {show(value)}")
            return None

    def dump(self, datum: Any) -> Any:
        if type(datum) is int:
            datum = date.fromordinal(datum + _DAYS_SHIFT)
        return date(datum.year, datum.month, datum.day).isoformat()

    def accepts(self, datum: Any) -> bool:
        return type(datum) is date or type(datum) is int


class TimeNode(Node):
    json_types = frozenset({str, int})
    datum_types = frozenset({time, int})

    def __init__(self, logical: str, per_second: int) -> None:
        self.wrap_name = "int" if per_second == 1000 else "long"
        self.display = f"{self.wrap_name} ({logical})"
        self.logical, self.per_second = logical, per_second
        self.unit = "milliseconds" if per_second == 1000 else "microseconds"

    def load(self, value: Any, ctx: Ctx) -> Any:
        if type(value) is int:
            if not 0 <= value < 86_400 * self.per_second:
                ctx.fail(f"{self.unit} since midnight out of range (0 to {86_400 * self.per_second - 1})")
                return None
            return self._from_units(value)
        if type(value) is not str:
            ctx.fail(
                f"expected a time of day 'HH:MM:SS.sss' or {self.unit} since midnight "
                f"(Avro {self.logical}), got {json_kind(value)}"
            )
            return None
        try:
            if not _TIME.match(value):
                raise ValueError
            moment = time.fromisoformat(value)
        except ValueError:
            ctx.fail(f"expected a time of day like '13:45:00.000' (no offset), got {show(value)}")
            return None
        if self.per_second == 1000:
            moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        return moment

    def _from_units(self, value: int) -> time:
        micros = value * (1_000_000 // self.per_second)
        seconds, micro = divmod(micros, 1_000_000)
        return time(seconds // 3600, seconds // 60 % 60, seconds % 60, micro)

    def dump(self, datum: Any) -> Any:
        if type(datum) is int:
            datum = self._from_units(datum)
        return datum.isoformat(timespec=self.unit)

    def accepts(self, datum: Any) -> bool:
        return isinstance(datum, time) or type(datum) is int


class UuidNode(Node):
    wrap_name = "string"
    display = "string (uuid)"
    json_types = frozenset({str})
    datum_types = frozenset({str, uuid.UUID})

    def load(self, value: Any, ctx: Ctx) -> Any:
        if type(value) is str and _UUID.match(value):
            return uuid.UUID(value)
        got = show(value) if type(value) is str else json_kind(value)
        ctx.fail(f"expected a UUID like '123e4567-e89b-12d3-a456-426614174000', got {got}")
        return None

    def dump(self, datum: Any) -> Any:
        return str(datum)

    def accepts(self, datum: Any) -> bool:
        return isinstance(datum, uuid.UUID) or type(datum) is str


class DecimalNode(Node):
    json_types = frozenset({str, int, float})
    datum_types = frozenset({Decimal, bytes, bytearray})

    def __init__(self, precision: int, scale: int, fixed: FixedNode | None) -> None:
        self.precision, self.scale, self.fixed = precision, scale, fixed
        self.wrap_name = fixed.wrap_name if fixed else "bytes"
        self.logical = f"decimal({precision},{scale})"
        self.display = f"{self.wrap_name} ({self.logical})"
        self.quantum = Decimal(1).scaleb(-scale)
        self.context = Context(prec=precision)

    def load(self, value: Any, ctx: Ctx) -> Any:
        kind = type(value)
        if kind is str and _DECIMAL.match(value):
            return self._fit(Decimal(value), show(value), ctx)
        if kind is int:
            return self._fit(Decimal(value), str(value) if value.bit_length() < 64 else "the number", ctx)
        if kind is float and math.isfinite(value):
            return self._fit(Decimal(repr(value)), repr(value), ctx)
        got = f"string {show(value)}" if kind is str else json_kind(value)
        ctx.fail(f"expected a decimal number as a string or number (Avro {self.logical}), got {got}")
        return None

    def _fit(self, number: Decimal, shown: str, ctx: Ctx) -> Decimal | None:
        if number and number.adjusted() >= self.precision - self.scale:
            ctx.fail(
                f"{shown} has too many digits for Avro {self.logical} "
                f"(at most {self.precision - self.scale} before the point)"
            )
            return None
        try:
            fitted = number.quantize(self.quantum, context=self.context)
        except InvalidOperation:
            fitted = None
        if fitted is None or fitted != number:
            ctx.fail(f"{shown} has more than {self.scale} decimal places (Avro {self.logical})")
            return None
        return fitted  # fastavro's parser already checked that the precision fits a fixed's size

    def dump(self, datum: Any) -> Any:
        if not isinstance(datum, Decimal):
            datum = self._from_bytes(bytes(datum))
        return format(datum, "f")

    def _from_bytes(self, data: bytes) -> Decimal:
        return Decimal(f"{int.from_bytes(data, 'big', signed=True)}E-{self.scale}")

    def default(self, value: Any) -> Any:
        number = self._from_bytes((self.fixed or BytesNode()).default(value))
        ctx = Ctx([])
        fitted = self._fit(number, str(number), ctx)
        if ctx.problems:
            raise ValueError(ctx.problems[0][1])
        return fitted

    def accepts(self, datum: Any) -> bool:
        return isinstance(datum, Decimal)
