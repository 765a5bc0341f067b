"""The inline lane in a real server process: keep-alive, pipelining, HTTP/1.0 over a socket."""

from __future__ import annotations

import socket

import orjson

from support.serving import ServerProcess, make_data, v2_body


def post(body: bytes, version: str = "1.1") -> bytes:
    return (f"POST /v2/models/forest/infer HTTP/{version}\r\nhost: x\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
            ).encode() + body  # fmt: skip


def read_answers(sock: socket.socket, count: int) -> list[tuple[bytes, dict[str, str], bytes]]:
    raw, found = b"", []
    while len(found) < count:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(found)} of {count} answers"
        raw += chunk
        while b"\r\n\r\n" in raw:
            head, _, rest = raw.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = {k.lower(): v for k, v in (ln.split(": ", 1) for ln in lines[1:])}
            size = int(headers["content-length"])
            if len(rest) < size:
                break
            found.append((lines[0].encode(), headers, rest[:size]))
            raw = rest[size:]
    return found


def test_keep_alive_pipelining_and_http10(forest_server: ServerProcess) -> None:
    X, _ = make_data()
    bodies = [orjson.dumps(v2_body(X[i : i + 1], id=f"p{i}")) for i in range(20)]
    big = orjson.dumps(v2_body(X[:200], id="big") | {"pad": "x" * 300_000})  # past inline
    with socket.create_connection(("127.0.0.1", forest_server.port), timeout=10) as sock:
        for body in bodies[:5]:  # one connection, one request at a time
            sock.sendall(post(body))
            ((status, headers, _),) = read_answers(sock, 1)
            assert status.startswith(b"HTTP/1.1 200") and "date" in headers
        sock.sendall(b"".join(post(b) for b in bodies[5:10]) + post(big) + post(bodies[10]))
        answers = read_answers(sock, 7)
        ids = [orjson.loads(body)["id"] for _, _, body in answers]
        assert ids == ["p5", "p6", "p7", "p8", "p9", "big", "p10"]
        assert len(orjson.loads(answers[5][2])["outputs"][0]["data"]) == 200
    with socket.create_connection(("127.0.0.1", forest_server.port), timeout=10) as sock:
        sock.sendall(post(bodies[11], version="1.0"))
        ((status, headers, body),) = read_answers(sock, 1)
        assert headers["connection"] == "close" and orjson.loads(body)["id"] == "p11"
        assert sock.recv(10) == b""  # the server closed it
