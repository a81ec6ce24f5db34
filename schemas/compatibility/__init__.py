"""Avro schema compatibility: can the readers and writers of a contract keep running across a change?

Everything rests on one question, answered by ``reader_findings(reader, writer)``: can a consumer
whose schema is ``reader`` decode data a producer wrote with ``writer``? The answer follows the
schema-resolution rules of the Avro 1.11 specification, the ones every Avro reader applies.

Modes (``Mode``) name directions between the NEW schema and the OLD (already registered) versions:

    BACKWARD   new reads old      reader = new, writer = old: consumers may upgrade first
    FORWARD    old reads new      reader = old, writer = new: producers may upgrade first
    FULL       both directions
    *_TRANSITIVE                  against every previous version, not only the latest
    NONE                          no check

Azure Schema Registry enforces only None, Backward and Forward, against the latest version; the
other modes are for checks the registry cannot do, such as CI on contracts, and for the local
emulator's groups.

    modes.py     Mode (with its Azure name) and UnknownModeError
    checker.py   check_compatibility, reader_findings, Finding and the rules they apply
"""

from schemas.compatibility.checker import Finding, check_compatibility, reader_findings
from schemas.compatibility.modes import Mode, UnknownModeError

__all__ = ["Finding", "Mode", "UnknownModeError", "check_compatibility", "reader_findings"]
