"""Old import path of ``schemas.natural``, kept until its callers import from there."""

from schemas.natural import NaturalJson, from_natural_json, to_natural_json

__all__ = ["NaturalJson", "from_natural_json", "to_natural_json"]
