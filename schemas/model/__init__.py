"""One parsed model of an Avro schema, which the codec, the natural-JSON mapping and the compatibility
checker all walk.

``parse(data)`` (decoded JSON) or ``parse_text(text)`` validates a schema with fastavro and builds a
graph of types from fastavro's parsed form. Every named type (record, enum, fixed) becomes one object,
shared by every place that refers to it, so a recursive record is a cycle in the graph, not an endless
tree.

Names follow the Avro specification: a name containing a dot is a full name; otherwise the namespace
is the type's own ``namespace`` or, failing that, the enclosing one ("" means none). A reference by
unqualified name resolves in the enclosing namespace. Aliases are qualified the same way against the
namespace of the type that declares them; ``names_match`` is the specification's rule for when a
reader's named type may read a writer's.

Field defaults are kept as written (JSON); logical types as ``Logical`` on the primitive or fixed they
annotate. ``describe`` renders a type for messages.
"""

from schemas.model.parse import Schema, parse, parse_text
from schemas.model.types import (
    PRIMITIVES,
    Array,
    AvroType,
    Enum,
    Field,
    Fixed,
    Logical,
    Map,
    Named,
    Primitive,
    Record,
    Union,
    describe,
    is_null,
    kind_of,
    names_match,
    nullable,
)

__all__ = [
    "PRIMITIVES",
    "Array",
    "AvroType",
    "Enum",
    "Field",
    "Fixed",
    "Logical",
    "Map",
    "Named",
    "Primitive",
    "Record",
    "Schema",
    "Union",
    "describe",
    "is_null",
    "kind_of",
    "names_match",
    "nullable",
    "parse",
    "parse_text",
]
