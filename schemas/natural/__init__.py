"""Natural JSON in and out of fastavro datums, for one Avro schema.

The producer API takes events as *natural JSON*, what a web developer would write, and delivery hands
them back the same way::

    converter = NaturalJson(contract.schema)   # compile once per schema
    datum = converter.from_json(body)          # EventValidationError lists every bad field path
    body = converter.to_json(datum)            # datum as decoded by fastavro.schemaless_reader

Natural JSON against Avro types:

    record        an object; a missing field takes its default, else "required field missing";
                  keys the record does not have are "unknown field" (typos get a suggestion)
    int, long     a JSON integer in range (not a boolean, not 1.0)
    float, double a number; the strings "NaN", "Infinity", "-Infinity" for what JSON cannot write
    boolean, string, null   only true/false, only a string, only null
    bytes, fixed  base64 (standard or URL-safe, padding optional); a fixed must decode to its size
    enum          one of the symbols
    array, map    a JSON array; a JSON object with any keys
    timestamp-millis, timestamp-micros
                  ISO-8601 date-time ("Z" or an offset; none means UTC) or epoch millis / micros
    local-timestamp-millis, local-timestamp-micros
                  the same, kept as a UTC wall clock; written back without "Z"
    date          "YYYY-MM-DD" or days since 1970-01-01
    time-millis, time-micros   "HH:MM[:SS[.fff]]" or millis / micros since midnight
    uuid          "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
    decimal       a string or a number, with no more decimal places than the scale
    union         null, or the one branch the value fits; Avro's wrapper {"<type or full name>": value}
                  picks a branch; when several numeric branches fit the first wins, when other
                  branches fit the value is ambiguous and needs the wrapper

Problem paths run from the root: ``sections[2].order``, ``metadata.lang``, ``metadata["x-trace"]``;
the root itself is ``$`` (``schemas.paths``). Every problem is reported, not just the first.

Union datums: where fastavro could not tell the chosen branch from the Python value (e.g. ``["int",
"long"]``, two records, string and enum) the datum is fastavro's tuple notation ``(name, value)``, which
``schemaless_writer`` follows; ``["null", X]`` and other unions whose branches take distinct Python types
stay plain. Read with ``return_named_type=True`` when a union holds several named types, so ``to_json``
knows the branch; where the natural form alone would be ambiguous it writes the wrapper form.

The converter is built from the schema's model (``schemas.model``), one node per type:

    nodes.py      the walk's state (path, problems) and the node base class
    scalars.py    null, boolean, int/long, float/double, string, bytes, fixed, enum
    logical.py    timestamps, local timestamps, date, time of day, uuid, decimal
    composite.py  array, map, record (defaults, unknown fields), union (branch choice, wrappers)
    converter.py  NaturalJson, and the cached from_natural_json / to_natural_json
"""

from schemas.natural.converter import NaturalJson, from_natural_json, to_natural_json

__all__ = ["NaturalJson", "from_natural_json", "to_natural_json"]
