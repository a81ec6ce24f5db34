"""The HTTP bench's floor: a bare FastAPI app that only reads and parses the body, on the producer API's stack.

    python -m bench._http_floor --port 8123 [--workers 2] [--loop uvloop] [--http httptools]

It is served exactly as ``hubstream produce-api`` serves the producer API: the same ``server_options`` (limits,
timeouts, loop, parser), an app factory by import string, the same number of worker processes. Its routes
answer the producer API's paths with a small fixed JSON body, so one load generator drives both.
"""

from __future__ import annotations

import argparse

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

from hubstream.settings import load_settings
from hubstream_cli.produce_api import server_options

_ANSWER = b'{"topic":"t","partition":0,"offset":0,"schemaId":"0"}'


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/topics/{topic}/events")
    async def event(topic: str, request: Request) -> Response:
        orjson.loads(await request.body())
        return Response(_ANSWER, media_type="application/json")

    @app.post("/v1/topics/{topic}/events:batch")
    async def batch(topic: str, request: Request) -> Response:
        events = orjson.loads(await request.body())["events"]
        return Response(b'{"failed":0,"count":%d}' % len(events), media_type="application/json")

    @app.get("/readyz")
    async def readyz() -> Response:
        return Response(b'{"ready":true}', media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--loop", default="uvloop")
    parser.add_argument("--http", default="httptools")
    args = parser.parse_args()
    settings = load_settings(api={"host": "127.0.0.1", "port": args.port})
    options = server_options(settings, loop=args.loop, http=args.http)
    uvicorn.run("bench._http_floor:bare_app", factory=True, workers=args.workers, log_level="warning", **options)


if __name__ == "__main__":
    main()
