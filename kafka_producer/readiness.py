"""The contracts' schema ids, looked up once at startup in a thread, so no request waits on the registry.

Until every contract's id is known, ``/readyz`` says not ready and a publish to a topic whose contract has no
id yet is answered 503 at once, with the lookup's last error; the thread retries every ``retry_s`` (this is
the brief cache of a refusal: requests never repeat the SDK's retries themselves). Ids never change once
issued, so after startup the registry is not needed to publish.
"""

from __future__ import annotations

import logging
import threading

from hubstream.errors import HubstreamError, RegistryError
from schemas.contracts import Catalog
from schemas.registry import SchemaRegistry

log = logging.getLogger(__name__)


class ContractNotReadyError(RegistryError):
    """A contract whose schema id the API has not been able to look up yet (503)."""


class ContractIds:
    def __init__(self, catalog: Catalog, registry: SchemaRegistry, *, retry_s: float) -> None:
        self._catalog = catalog
        self._registry = registry
        self._retry_s = retry_s
        self._known: dict[str, str] = {}
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._resolve_all, name="contract-ids", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def ready(self) -> bool:
        return len(self._known) == len(self._catalog.contracts)

    @property
    def last_error(self) -> str | None:
        return None if self.ready else self._last_error

    def require(self, contract_name: str) -> None:
        """Raise ContractNotReadyError, at once, while ``contract_name``'s id is not known."""
        if contract_name not in self._known:
            problem = self._last_error or "the lookup has not finished yet"
            raise ContractNotReadyError(
                f"the schema id of {contract_name} is not known yet ({problem}); the API keeps asking the schema "
                "registry: retry after the Retry-After delay"
            )

    def _resolve_all(self) -> None:
        while not self._stop.is_set():
            for name, contract in self._catalog.contracts.items():
                if name in self._known:
                    continue
                try:
                    self._known[name] = self._registry.schema_id(contract)
                except HubstreamError as exc:
                    self._last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("schema id of %s not known yet, retrying in %.0f s: %s", name, self._retry_s, exc)
                except Exception as exc:  # noqa: BLE001 - the SDK's transport errors; keep retrying, say why
                    self._last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("schema id of %s not known yet, retrying in %.0f s: %s", name, self._retry_s, exc)
            if self.ready:
                log.info("schema ids of %d contracts known", len(self._known))
                return
            self._stop.wait(self._retry_s)
