"""Credentials for Azure Schema Registry: a static token for the local emulator, Entra ID for Azure."""

from __future__ import annotations

import time

from azure.core.credentials import AccessToken, TokenCredential

from hubstream.settings import Settings

# Tokens from StaticTokenCredential never need refreshing within a process's life.
_STATIC_TOKEN_LIFETIME_S = 24 * 3600


class StaticTokenCredential:
    """A TokenCredential that always returns the same bearer token (the emulator's optional check)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + _STATIC_TOKEN_LIFETIME_S)


def registry_credential(settings: Settings) -> TokenCredential:
    """The credential the registry client uses: ``static`` locally, ``azure`` (Entra ID) for Event Hubs."""
    kind = settings.registry.credential or ("azure" if settings.profile == "eventhubs" else "static")
    if kind == "static":
        return StaticTokenCredential(settings.registry.token.get_secret_value())
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()
