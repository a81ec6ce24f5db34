"""Compatibility modes: Azure Schema Registry's three, and the ones hubstream adds for its own checks.

Each mode names the directions checked between the NEW schema and the OLD (already registered)
versions:

    mode                  Azure name           checks
    NONE                  None                 nothing
    BACKWARD              Backward             new reads old: consumers may upgrade first
    FORWARD               Forward              old reads new: producers may upgrade first
    FULL                  Full                 both directions
    BACKWARD_TRANSITIVE   BackwardTransitive   BACKWARD against every previous version, not only the latest
    FORWARD_TRANSITIVE    ForwardTransitive    the same for FORWARD
    FULL_TRANSITIVE       FullTransitive       the same for FULL

Azure Schema Registry offers only None, Backward and Forward, checked against the latest version and
for Avro groups only (``in_azure``). The others are a hubstream extension: the local emulator's groups
accept them, and so do the contract checks run in CI, but a group using one cannot be recreated as-is
in Azure.
"""

from __future__ import annotations

import re
from enum import StrEnum

from hubstream.errors import ConfigurationError


class UnknownModeError(ConfigurationError, ValueError):
    def __init__(self, text: object) -> None:
        valid = ", ".join(mode.value for mode in Mode)
        super().__init__(
            f"unknown compatibility mode {text!r}; valid modes: {valid} "
            "(any case; '-', '_', spaces or CamelCase between words). "
            "Azure Schema Registry itself offers only None, Backward and Forward."
        )


class Mode(StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    FORWARD = "FORWARD"
    # hubstream extension, not offered by Azure
    FULL = "FULL"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @classmethod
    def parse(cls, text: str) -> Mode:
        """Any spelling people use: ``backward``, ``Backward``, ``full-transitive``, ``FullTransitive``,
        ``BACKWARD_TRANSITIVE``, ``backward transitive`` ..."""
        if isinstance(text, Mode):
            return text
        if not isinstance(text, str):
            raise UnknownModeError(text)
        wanted = re.sub(r"[\s_-]", "", text).lower()
        for mode in cls:
            if mode.name.replace("_", "").lower() == wanted:
                return mode
        raise UnknownModeError(text)

    @property
    def azure_name(self) -> str:
        """The name as Azure writes it (``Backward``); the emulator's for the modes Azure lacks (``FullTransitive``)."""
        return "".join(word.capitalize() for word in self.name.split("_"))

    @property
    def in_azure(self) -> bool:
        return self in (Mode.NONE, Mode.BACKWARD, Mode.FORWARD)

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        return self.value.startswith(("FORWARD", "FULL"))
