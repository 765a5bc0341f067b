"""The benchmark's upstream: the cheapest possible "model server" (raw ASGI under uvicorn).

It reads the request and answers a fixed small V2 inference response, so the benchmark measures
the proxies in front of it, not a model. Run: `python upstream.py PORT NAME`.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import uvicorn

Message = MutableMapping[str, Any]


def make_app(name: str) -> Callable[..., Awaitable[None]]:
    body = orjson.dumps(
        {
            "model_name": name,
            "outputs": [{"name": "predict", "datatype": "INT64", "shape": [1], "data": [1]}],
        }
    )
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
    }
    done = {"type": "http.response.body", "body": body}

    async def app(
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send(start)
        await send(done)

    return app


def main() -> None:
    port, name = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(
        make_app(name),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
        timeout_keep_alive=60,
    )


if __name__ == "__main__":
    main()
