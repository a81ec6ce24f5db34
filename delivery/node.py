"""A delivery node: a consumer-group member that fills mailboxes, and the HTTP API that empties them.

One process, one event loop (uvicorn's) for the API, the streams and the mailbox writer; the consumer worker's
poll loop in a thread of its own. ``consume=False`` serves the API only: extra nodes over a shared PostgreSQL.

SIGTERM or SIGINT: open streams get a farewell with a retry hint (clients reconnect, to another node if this one
is going away), the worker finishes the writes in flight, commits and leaves the group, then the server stops.
A second SIGINT stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import uvicorn

from delivery.api import DeliveryService, create_app
from delivery.auth import TokenVerifier
from delivery.console import ConsoleData, ConsoleService, console_routes
from delivery.metrics import DeliveryMetrics
from delivery.processor import DeliveryProcessor
from delivery.routing import load_routes
from delivery.stores import MailboxStore, Retention, open_store
from delivery.streams import Follow
from delivery.wakeups import Wakeups
from delivery.webhooks.api import WebhookService, webhook_routes
from delivery.webhooks.dispatcher import Dispatcher
from hubstream.errors import ConfigurationError, HubstreamError
from hubstream.ports import ensure_port_free, free_port
from hubstream.settings import Settings
from kafka_consumer.runtime import ConsumerWorker
from kafka_consumer.wiring import DeadLetters, build_worker
from schemas.contracts import Catalog
from schemas.serde import AvroSerde

log = logging.getLogger(__name__)

_FAREWELL_S = 0.5  # how long streams get to send their farewell before the server stops


@dataclass(frozen=True)
class NodeOptions:
    group: str
    topics: list[str]
    consume: bool = True
    port: int | None = None  # None: the settings' port; 0: a free one


class DeliveryNode:
    def __init__(self, settings: Settings, options: NodeOptions) -> None:
        if options.consume and not options.topics:
            raise ConfigurationError("a consuming delivery node needs at least one topic (--topic)")
        self.settings = settings
        self.options = options
        self.verifier = TokenVerifier(settings.delivery.auth)  # fails fast without a way to check tokens
        self.metrics = DeliveryMetrics()
        self.wakeups = Wakeups()
        self.port = self._port()
        self.url = f"http://{settings.delivery.host}:{self.port}"
        self.failure: BaseException | None = None
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: ConsumerWorker | None = None

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT; raises what made the worker fail."""
        asyncio.run(self._serve())
        if self.failure is not None:
            raise self.failure

    def stop(self) -> None:
        """Begin the graceful shutdown (thread and signal safe)."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self.wakeups.bind(self._loop)
        store = self._store()
        await store.open()
        closing = asyncio.Event()
        follow = Follow(store, self.wakeups, self.settings.delivery, closing)
        worker = self._worker = self._build_worker(store) if self.options.consume else None
        dispatcher = Dispatcher(
            store.webhooks,
            self.settings.webhooks,
            self.metrics.webhooks,
            wake=store.new_deliveries,
            allow_loopback=self._allow_loopback(),
        )
        service = DeliveryService(
            store,
            self.verifier,
            follow,
            self.metrics,
            self.settings.delivery,
            worker_status=lambda: worker.status() if worker else None,
            worker_metrics=lambda: worker.metrics.exposition() if worker else b"",
        )
        app = create_app(service)
        webhook_routes(
            app,
            WebhookService(
                store.webhooks, dispatcher, self.verifier, self._allow_loopback(), self.settings.webhooks.allow_private
            ),
        )
        console = ConsoleData(self.settings, self.options.group, self.options.topics)
        console_routes(app, ConsoleService(console, self.verifier))
        config = uvicorn.Config(
            app,
            host=self.settings.delivery.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
            lifespan="off",
        )
        server = _Server(config, on_signal=self.stop)
        thread = threading.Thread(target=self._run_worker, name="delivery-worker", daemon=True) if worker else None
        prune = asyncio.create_task(self._prune_forever(store))
        dispatching = asyncio.create_task(dispatcher.run())
        serving = asyncio.create_task(server.serve())
        try:
            if thread is not None:
                thread.start()
            log.info(
                "delivery node on %s (%s)",
                self.url,
                "consuming " + ", ".join(self.options.topics) if worker else "API only",
                extra={"event": "delivery_ready", "url": self.url},
            )
            stopped = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({stopped, serving}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
        finally:
            closing.set()
            self.wakeups.notify_everyone()  # every stream sends its farewell now
            if worker is not None and thread is not None:
                worker.stop()
                await asyncio.to_thread(thread.join, worker.options.drain_timeout_s + 30)
            await asyncio.sleep(_FAREWELL_S)
            server.should_exit = True
            await serving
            prune.cancel()
            dispatching.cancel()
            await asyncio.gather(dispatching, return_exceptions=True)
            await store.close()
            console.close()

    def _run_worker(self) -> None:
        assert self._worker is not None
        try:
            self._worker.run()
        except BaseException as exc:  # noqa: BLE001 - handed to run(), which raises it after shutting down
            self.failure = exc
            log.error("the delivery node's consumer stopped: %s", exc)
        finally:
            self.stop()

    def _build_worker(self, store: MailboxStore) -> ConsumerWorker:
        settings, loop = self.settings, self._loop
        assert loop is not None
        catalog = Catalog.from_settings(settings)
        routes = load_routes(catalog, settings.topics_file, self.options.topics)

        def processor(serde: AvroSerde, dead_letters: DeadLetters) -> DeliveryProcessor:
            return DeliveryProcessor(
                serde,
                catalog,
                routes,
                store,
                loop=loop,
                metrics=self.metrics,
                dead_letters=dead_letters,
                batch_max=settings.delivery.batch_max,
            )

        return build_worker(settings, group=self.options.group, topics=self.options.topics, processor=processor)

    def _store(self) -> MailboxStore:
        d = self.settings.delivery
        return open_store(
            d.store,
            retention=Retention(d.max_messages, d.ttl_s, d.acked_grace_s),
            wakeups=self.wakeups,
            state_dir=self.settings.state_dir,
        )

    def _allow_loopback(self) -> bool:
        allowed = self.settings.webhooks.allow_loopback
        return self.settings.profile == "local" if allowed is None else allowed

    def _port(self) -> int:
        host, port = self.settings.delivery.host, self.options.port
        port = self.settings.delivery.port if port is None else port
        if port == 0:
            return free_port(host)
        ensure_port_free(host, port, "delivery node")
        return port

    async def _prune_forever(self, store: MailboxStore) -> None:
        while True:
            await asyncio.sleep(self.settings.delivery.prune_interval_s)
            try:
                removed = await store.prune()
                await store.webhooks.prune_attempts(time.time() - self.settings.webhooks.attempts_retention_s)
            except HubstreamError as exc:
                log.warning("mailbox retention could not run: %s", exc)
                continue
            if removed:
                log.info("retention removed %d mailbox messages", removed, extra={"event": "pruned", "count": removed})


class _Server(uvicorn.Server):
    """uvicorn that hands the first signal to the node's graceful shutdown (and stops at once on a second)."""

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_signal = on_signal
        self._signalled = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._signalled and sig == signal.SIGINT:
            self.force_exit = self.should_exit = True
            return
        self._signalled = True
        self._on_signal()
