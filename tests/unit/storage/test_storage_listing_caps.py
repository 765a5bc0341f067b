"""Object-store prefixes are counted page by page, up to the file cap, before any listing:
a prefix of millions of keys is refused after a few requests, never held in memory."""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.storage.errors import ArtifactTooLarge
from mlkube.storage.locations import resolve
from mlkube.storage.policy import Budget, FetchLimits
from mlkube.storage.transfer import list_entries

TOTAL = 1_000_000  # keys under the prefix


class FakeStore:
    """gcsfs / s3fs as `list_entries` sees them: paged listings of a huge prefix; a whole
    listing (walk) is a failure of the test."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def info(self, path: str) -> dict[str, Any]:
        return {"type": "directory", "name": path, "size": 0}

    def walk(self, *_: Any, **__: Any) -> Any:
        raise AssertionError("the whole prefix was listed")

    def _page(self, size: int, offset: int) -> tuple[list[str], str | None]:
        names = [f"bucket/big/k{offset + i}" for i in range(min(size, TOTAL - offset))]
        more = offset + len(names) < TOTAL
        return names, str(offset + len(names)) if more else None

    def call(self, method: str, path: str, bucket: str, **params: Any) -> dict[str, Any]:
        assert (method, path, bucket, params["prefix"]) == ("GET", "b/{}/o", "bucket", "big/")
        assert params["json_out"] is True and "delimiter" not in params  # the whole subtree
        self.requests.append(params)
        names, token = self._page(params["maxResults"], int(params.get("pageToken", 0)))
        page: dict[str, Any] = {"items": [{"name": n} for n in names]}
        if token:
            page["nextPageToken"] = token
        return page

    def call_s3(self, op: str, **params: Any) -> dict[str, Any]:
        assert (op, params["Bucket"], params["Prefix"]) == ("list_objects_v2", "bucket", "big/")
        self.requests.append(params)
        names, token = self._page(params["MaxKeys"], int(params.get("ContinuationToken", 0)))
        return {"KeyCount": len(names), "IsTruncated": token is not None,
                "NextContinuationToken": token}  # fmt: skip


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_a_huge_prefix_is_refused_after_a_bounded_count(scheme: str) -> None:
    fs = FakeStore()
    uri = f"{scheme}://bucket/big"
    with pytest.raises(ArtifactTooLarge, match="2500"):
        list_entries(resolve(uri), fs, Budget(FetchLimits(max_files=2500), uri))  # type: ignore[arg-type]
    assert len(fs.requests) == 3  # 1000 + 1000 + 501 keys: cap + 1, then stop
