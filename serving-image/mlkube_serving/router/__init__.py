"""The endpoint router: one stable Service in front of an endpoint's deployments.

It splits live traffic by weight, mirrors a share of it to candidate deployments, honours
header targeting and key auth, and hot-reloads its routing table from a ConfigMap. The hot
path is raw ASGI under uvicorn with a minimal keep-alive HTTP/1.1 upstream client.
"""
