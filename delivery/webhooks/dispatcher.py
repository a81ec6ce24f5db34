"""Sending webhook deliveries: claim what is due, POST it signed, record what happened.

Every node runs one dispatcher; with PostgreSQL they share the work (a claim skips rows another node holds). A
claimed delivery is leased for the request timeout plus a margin, so if this node dies mid-send the delivery is due
again when the lease ends, on whichever node claims it: every message reaches its endpoint at least once, and the
receiver dedupes on ``webhook-id``. An ordered endpoint gets one delivery in flight per recipient, oldest first,
so a failing recipient waits on its own schedule while the endpoint's other recipients keep flowing; other
endpoints are never held up, and each endpoint has at most ``max_in_flight`` requests open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict

import aiohttp

from delivery.metrics import WebhookMetrics
from delivery.webhooks import schedule, signing
from delivery.webhooks.model import Attempt, Claimed, Endpoint, Result, WebhookStore
from delivery.webhooks.urls import EndpointUrlError, check_url
from hubstream.errors import HubstreamError
from hubstream.settings import WebhookSettings

log = logging.getLogger(__name__)

_LEASE_MARGIN_S = 30.0
_RESPONSE_EXCERPT = 500
_BACKLOG_EVERY_S = 5.0
_ENDPOINT_CACHE_S = 2.0


class Dispatcher:
    def __init__(
        self,
        store: WebhookStore,
        settings: WebhookSettings,
        metrics: WebhookMetrics,
        *,
        wake: asyncio.Event,
        allow_loopback: bool,
    ) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._wake = wake
        self._allow_loopback = allow_loopback
        self._session: aiohttp.ClientSession | None = None  # made on the loop that runs the dispatcher
        self._in_flight: dict[str, int] = defaultdict(int)
        self._tasks: set[asyncio.Task[None]] = set()
        self._results: list[Result] = []
        self._finished = asyncio.Event()  # a result waits to be recorded
        self._endpoints: dict[str, tuple[float, Endpoint]] = {}
        self._enabled: list[str] = []
        self._enabled_at = -float("inf")
        self._turn = 0

    async def run(self) -> None:
        """Until cancelled; store trouble is logged and retried."""
        recorder = asyncio.create_task(self._record_forever())
        backlog = asyncio.create_task(self._backlog_forever())
        try:
            while True:
                try:
                    capacity = await self._capacity()
                    claimed = (
                        await self._store.claim(time.time(), capacity, self._settings.timeout_s + _LEASE_MARGIN_S)
                        if capacity
                        else []
                    )
                except HubstreamError as exc:
                    log.warning("webhook deliveries could not be claimed: %s", exc)
                    claimed = []
                for item in claimed:
                    self._in_flight[item.endpoint_id] += 1
                    task = asyncio.create_task(self._deliver(item))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                if len(claimed) < self._settings.claim_batch:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval_s)
                    self._wake.clear()
        finally:
            for task in (*self._tasks, recorder, backlog):
                task.cancel()
            await asyncio.gather(*self._tasks, recorder, backlog, return_exceptions=True)
            await self._flush()
            if self._session is not None:
                await self._session.close()

    def wake(self) -> None:
        """Look for due deliveries now (e.g. after a recover)."""
        self._wake.set()

    async def send_test(self, endpoint: Endpoint) -> Attempt:
        """POST a test message to an endpoint now (no delivery row; the attempt is kept)."""
        event_id = f"test-{uuid.uuid4()}"
        body = f'{{"test":true,"eventId":"{event_id}","endpoint":"{endpoint.id}"}}'.encode()
        attempt, _ = await self._post(endpoint, event_id, body, recipient="", seq=0, number=1)
        await self._store.log_attempt(attempt)
        return attempt

    async def _deliver(self, claimed: Claimed) -> None:
        try:
            endpoint = await self._endpoint(claimed.endpoint_id)
            number = claimed.attempts + 1
            if claimed.message_json is None:
                attempt = Attempt(
                    claimed.endpoint_id,
                    claimed.event_id,
                    claimed.recipient,
                    claimed.seq,
                    number,
                    time.time(),
                    None,
                    0.0,
                    "",
                    "the message left the mailbox (retention) before it could be delivered",
                )
                self._results.append(Result(claimed, attempt, "failed", None))
                self._finished.set()
                return
            attempt, retry_after = await self._post(
                endpoint, claimed.event_id, claimed.message_json.encode(), claimed.recipient, claimed.seq, number
            )
            outcome = schedule.decide(
                number,
                attempt.status,
                retry_after,
                schedule=self._settings.retry_schedule_s,
                jitter=self._settings.jitter,
                max_retry_after_s=self._settings.max_retry_after_s,
            )
            self._results.append(Result(claimed, attempt, outcome.verdict.value, outcome.next_attempt_at))
            self._finished.set()
        except HubstreamError as exc:  # the endpoint was deleted meanwhile, or the store failed: the lease retries
            log.warning("webhook delivery of %s to %s not attempted: %s", claimed.event_id, claimed.endpoint_id, exc)
        finally:
            self._in_flight[claimed.endpoint_id] -= 1

    async def _post(
        self, endpoint: Endpoint, event_id: str, body: bytes, recipient: str, seq: int, number: int
    ) -> tuple[Attempt, str | None]:
        started, at = time.monotonic(), time.time()
        status, excerpt, error, retry_after = None, "", None, None
        try:
            await asyncio.to_thread(
                check_url, endpoint.url, allow_loopback=self._allow_loopback, allow_private=self._settings.allow_private
            )  # again: DNS may have changed
            headers = {
                "content-type": "application/json",
                **signing.headers(endpoint.signing_secrets(at), event_id, body, int(at)),
            }
            async with self._client().post(endpoint.url, data=body, headers=headers, allow_redirects=False) as response:
                status, retry_after = response.status, response.headers.get("retry-after")
                # a bounded read: an endpoint's answer is kept as an excerpt, whatever it sends
                head = await response.content.read(_RESPONSE_EXCERPT * 4)
            excerpt = head.decode(errors="replace")[:_RESPONSE_EXCERPT]
            if not 200 <= status < 300:
                error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
        except EndpointUrlError as exc:
            error = str(exc)
        except TimeoutError:
            error = f"no answer within {self._settings.timeout_s:.0f} s"
        except aiohttp.ClientError as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        latency_ms = (time.monotonic() - started) * 1000
        self._metrics.attempts.labels(endpoint.id, "ok" if error is None else "failed").inc()
        self._metrics.latency.labels(endpoint.id).observe(latency_ms / 1000)
        return Attempt(
            endpoint.id, event_id, recipient, seq, number, at, status, latency_ms, excerpt, error
        ), retry_after

    def _client(self) -> aiohttp.ClientSession:
        """The HTTP client, made on the dispatcher's loop at first use. aiohttp rather than httpx: sending is what
        bounds a node's webhook throughput, and aiohttp sends about twice as many requests per core. The pool has
        no limit of its own: per-endpoint concurrency is the dispatcher's (max_in_flight)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_s),
                connector=aiohttp.TCPConnector(limit=0),
                headers={"user-agent": "hubstream-webhooks"},
                auto_decompress=False,
            )
        return self._session

    async def _capacity(self) -> dict[str, int]:
        """How many more requests each enabled endpoint may have open (``max_in_flight`` each, ``claim_batch`` in
        all): a claim asks each endpoint for exactly that, so a busy endpoint neither costs a scan of its backlog
        nor holds up the others. The list of endpoints is looked up again every few seconds."""
        now = time.monotonic()
        if now - self._enabled_at > _ENDPOINT_CACHE_S:
            self._enabled = [e.id for e in await self._store.endpoints() if e.status == "enabled"]
            self._enabled_at = now
        left = self._settings.claim_batch
        capacity: dict[str, int] = {}
        self._turn += 1  # each claim starts at another endpoint, so claim_batch is shared out fairly
        start = self._turn % len(self._enabled) if self._enabled else 0
        for endpoint_id in self._enabled[start:] + self._enabled[:start]:
            free = min(left, self._settings.max_in_flight - self._in_flight[endpoint_id])
            if free > 0:
                capacity[endpoint_id] = free
                left -= free
        return capacity

    async def _endpoint(self, endpoint_id: str) -> Endpoint:
        cached = self._endpoints.get(endpoint_id)
        if cached is not None and time.monotonic() - cached[0] < _ENDPOINT_CACHE_S:
            return cached[1]
        endpoint = await self._store.endpoint(endpoint_id)
        self._endpoints[endpoint_id] = (time.monotonic(), endpoint)
        return endpoint

    async def _record_forever(self) -> None:
        """Record outcomes as they come, in batches (what finished during a write goes in the next), then look for
        what became due: an ordered endpoint's next message is due as soon as the one before it is recorded."""
        while True:
            await self._finished.wait()
            self._finished.clear()
            await self._flush()
            self._wake.set()

    async def _flush(self) -> None:
        results, self._results = self._results, []
        if not results:
            return
        try:
            disabled = await self._store.record(results, self._settings.disable_after_s)
        except HubstreamError as exc:  # not recorded: the leases run out and the deliveries are sent again
            log.warning("webhook outcomes could not be recorded (they will be retried): %s", exc)
            return
        for endpoint_id in disabled:
            self._endpoints.pop(endpoint_id, None)
            reason = next(r.verdict for r in results if r.claimed.endpoint_id == endpoint_id)
            log.error(
                "webhook endpoint %s disabled (%s)",
                endpoint_id,
                "it answered 410 Gone" if reason == "gone" else "it failed every attempt for too long",
                extra={"event": "webhook_disabled", "endpoint": endpoint_id},
            )

    async def _backlog_forever(self) -> None:
        while True:
            with contextlib.suppress(HubstreamError):
                backlog = await self._store.backlog()
                for endpoint in await self._store.endpoints():
                    self._metrics.disabled.labels(endpoint.id).set(endpoint.status == "disabled")
                    self._metrics.backlog.labels(endpoint.id).set(backlog.get(endpoint.id, 0))
            await asyncio.sleep(_BACKLOG_EVERY_S)
