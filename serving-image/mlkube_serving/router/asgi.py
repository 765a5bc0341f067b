"""The router's header policy: what is hop-by-hop, what the router rewrites or adds.

Kept apart from app.py so the routing logic reads top to bottom without HTTP details; the
ASGI types, replies and capped body reads come from the data plane's private HTTP core.
"""

from __future__ import annotations

from mlkube.contract import HEADER_AZUREML_DEPLOYMENT, HEADER_DEPLOYMENT, HEADER_MIRRORED

TARGET_HEADERS = frozenset({HEADER_DEPLOYMENT.encode(), HEADER_AZUREML_DEPLOYMENT.encode()})
# Hop-by-hop headers and those the router rewrites; clients may not forge the mirror mark.
DROP_REQUEST = frozenset(
    {
        b"host",
        b"content-length",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
        HEADER_MIRRORED.encode(),
    }
)
DROP_RESPONSE = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"trailer",
        b"upgrade",
        b"content-length",
        HEADER_DEPLOYMENT.encode(),
    }
)
DEPLOYMENT_HEADER = HEADER_DEPLOYMENT.encode()
METHODS = {m: m.encode() for m in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")}
WWW_AUTHENTICATE = (b"www-authenticate", b'Bearer realm="mlkube"')


# Bodies are buffered (mirroring needs them), so they are bounded: the model server's default.
MAX_BODY_BYTES = 32 * 1024 * 1024
