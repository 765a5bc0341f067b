"""A tiny stand-in model server for the router's process tests (run as a script).

It answers V2 infer, KServe V1 predict and Seldon predictions with `data * factor`, puts its
own deployment name in `model_name` (not in the compared outputs, so two servers with the same
factor agree), and counts what it saw: live vs mirrored requests and leaked auth headers.
`x-test-delay: <seconds>` makes it answer late (for timeout tests); `--fail-every N` answers
every Nth scoring request 500 and `--delay S` delays every one (a candidate broken on purpose).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import uvicorn

Message = MutableMapping[str, Any]


class FakeModelServer:
    def __init__(self, name: str, factor: float, fail_every: int = 0, delay: float = 0.0) -> None:
        self.name = name
        self.factor = factor
        self.fail_every = fail_every
        self.delay = delay
        self.stats: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        self.stats = {"live": 0, "mirrored": 0, "auth_headers": 0, "targeting_headers": 0}
        self.scored = 0

    async def __call__(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = dict(scope["headers"])
        status, payload = await self.handle(scope["method"], scope["path"], headers, body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def handle(
        self, method: str, path: str, headers: dict[bytes, bytes], body: bytes
    ) -> tuple[int, bytes]:
        if path == "/v2/health/ready":
            return 200, b"{}"
        if path == "/stats":
            return 200, orjson.dumps({"name": self.name, **self.stats})
        if path == "/stats/reset":
            self.reset()
            return 200, b"{}"
        self.stats["mirrored" if headers.get(b"x-mlkube-mirrored") == b"true" else "live"] += 1
        if b"authorization" in headers or b"api-key" in headers:
            self.stats["auth_headers"] += 1
        delay = headers.get(b"x-test-delay")
        if delay or self.delay:
            await asyncio.sleep(float(delay or self.delay))
        self.scored += 1
        if self.fail_every and self.scored % self.fail_every == 0:
            return 500, b'{"error": "failing on purpose"}'
        try:
            doc = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            return 400, b'{"error": "bad json"}'
        if path.startswith("/v2/models/") and path.endswith("/infer"):
            data = [x * self.factor for x in doc["inputs"][0]["data"]]
            output = {"name": "predict", "datatype": "FP64", "shape": [len(data)], "data": data}
            reply = {"model_name": self.name, "parameters": {"deployment": self.name}}
            return 200, orjson.dumps({**reply, "outputs": [output]})
        if path.startswith("/v1/models/") and path.endswith(":predict"):
            predictions = [[x * self.factor for x in row] for row in doc["instances"]]
            return 200, orjson.dumps({"predictions": predictions, "deployment": self.name})
        if path == "/api/v1.0/predictions":
            rows = doc["data"]["ndarray"]
            ndarray = [[x * self.factor for x in row] for row in rows]
            return 200, orjson.dumps({"data": {"ndarray": ndarray}, "meta": {"d": self.name}})
        return 404, b'{"error": "not found"}'


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--factor", type=float, default=1.0)
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    app = FakeModelServer(args.name, args.factor, args.fail_every, args.delay)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
