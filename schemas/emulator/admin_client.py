"""A small HTTPS client for the emulator's admin API (``/$hubstream/...``)."""

from __future__ import annotations

import ssl
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from hubstream.errors import RegistryError


class EmulatorAdminClient:
    def __init__(self, url: str, ca_file: Path, *, token: str | None = None, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify = ssl.create_default_context(cafile=str(ca_file))
        self._http = httpx.Client(base_url=self.url, verify=verify, headers=headers, timeout=timeout_s)

    def health(self) -> bool:
        try:
            return self._http.get("/$hubstream/health").status_code == 200
        except httpx.TransportError:
            return False

    def put_group(self, name: str, *, format: str = "Avro", compatibility: str = "Backward") -> dict[str, Any]:
        body = {"format": format, "compatibility": compatibility}
        group: dict[str, Any] = self._call("PUT", f"/$hubstream/groups/{name}", json=body)
        return group

    def list_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self._call("GET", "/$hubstream/groups")["groups"]
        return groups

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EmulatorAdminClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise RegistryError(f"cannot reach the schema registry emulator at {self.url}: {exc}") from exc
        if response.is_success:
            return response.json()
        raise RegistryError(f"the emulator refused {method} {path}: {_describe(response)}")


def _describe(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} {response.text[:200]}"
