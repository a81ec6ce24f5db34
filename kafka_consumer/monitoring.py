"""A worker's monitoring endpoint (``--ops-port``): ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

Served by uvicorn in a thread of its own, so it answers even while handlers keep the dispatcher busy. Both
health routes answer 200 or 503 with the worker's status as JSON (state, member id, partitions, problems;
kafka_consumer.health).
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from hubstream import ports
from hubstream.errors import HubstreamError
from hubstream.ports import ensure_port_free, free_port, port_free, port_open
from kafka_consumer.runtime import ConsumerWorker

_START_TIMEOUT_S = 20.0


def create_monitoring_app(worker: ConsumerWorker) -> FastAPI:
    app = FastAPI(title=f"hubstream worker ({worker.group})", docs_url=None, redoc_url=None)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(worker.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        status = worker.status()
        return JSONResponse(status.as_json(), status_code=200 if status.healthy else 503)

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        status = worker.status()
        return JSONResponse(status.as_json(), status_code=200 if status.ready else 503)

    return app


class MonitoringServer:
    """``with MonitoringServer(worker, host, port) as server:`` serves the ops routes at ``server.url``."""

    def __init__(self, worker: ConsumerWorker, host: str = "127.0.0.1", port: int | None = None) -> None:
        if port is None:  # the default port, unless another worker on this machine holds it
            port = ports.CONSUMER_OPS if port_free(host, ports.CONSUMER_OPS) else free_port(host)
        elif port == 0:
            port = free_port(host)
        else:
            ensure_port_free(host, port, "worker's ops endpoint (/metrics, /healthz)")
        self.host, self.port = host, port
        config = uvicorn.Config(
            create_monitoring_app(worker), host=host, port=port, log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="hubstream-ops", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> MonitoringServer:
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not (self._server.started and port_open(self.host, self.port)):
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise HubstreamError(f"the worker's ops endpoint did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(10)
