"""Avro binary encoders and decoders compiled per schema: fastavro's results without its per-value dispatch.

fastavro's writer and reader walk the schema again for every value they write or read: a chain of type
comparisons, a logical-type lookup and a Python call per field, and on reading a ``read(1)`` call per
varint byte. For a schema used for millions of records it pays to walk it once and generate a Python
function that does only the work left: index the dict, encode the string, append the bytes.

What fastavro does is kept, so results match ``fastavro.schemaless_writer`` / ``schemaless_reader``
(and, for valid records, Apache avro's ``DatumWriter``, which the tests check byte for byte):

- schemas are parsed into ``schemas.model`` (by ``fastavro.parse_schema`` underneath: names,
  namespaces, named-type references);
- logical types go through fastavro's own ``LOGICAL_WRITERS`` / ``LOGICAL_READERS`` functions, except
  timestamp-millis/-micros with aware datetimes, done inline with the same arithmetic;
- a record missing a field gets the field's default (``null`` for a nullable field without one);
- unions other than ``[null, T]`` are written by fastavro's ``write_data`` from inside the generated code.

Stricter than fastavro on writing, on purpose: a record with a field the schema does not define is
refused (fastavro drops it silently), ``boolean`` takes only ``bool``, ``int``/``long`` are range-checked.
Decoding rejects a body with bytes left over after the record. ``problems`` says, by field path, why
the encoder refused a record.

Decoding with a reader schema other than the writer's (schema resolution) is fastavro's ``_read_data``
(``resolving_decoder``), with one fix: a top-level field the writer lacks gets a fresh copy of its
default, decoded like a value, where fastavro would share one object between records.

    runtime.py    what the generated code calls: varint tables and caches, errors, fastavro bridges
    emitter.py    the generated module's namespace, local names, constants bound as locals
    encoder.py    source of the encoder; record fields filled from defaults
    decoder.py    source of the decoder
    compiled.py   compile_schema, CompiledSchema, resolving_decoder
    problems.py   why a value cannot be written, by field path
"""

from schemas.codec.compiled import CompiledSchema, compile_schema, resolving_decoder
from schemas.codec.problems import problems

__all__ = ["CompiledSchema", "compile_schema", "problems", "resolving_decoder"]
