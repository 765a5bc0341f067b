"""The operator's server-side watch filters (handlers/settings.py): the built-in kinds it
watches only for its own children are listed with a label selector and in pages, and no
handler on those kinds wants an object the selector keeps away (a handler whose label filter
were looser than the selector would silently miss events)."""

from __future__ import annotations

import kopf
from kopf._cogs.structs.references import Resource

from mlkube.handlers import main  # noqa: F401  (registers every handler)
from mlkube.handlers.settings import LIST_CHUNK, WATCH_SELECTORS, configure

KINDS = {
    ("", "v1", "pods"): Resource("", "v1", "pods", kind="Pod", namespaced=True),
    ("apps", "v1", "deployments"): Resource(
        "apps", "v1", "deployments", kind="Deployment", namespaced=True
    ),
    ("batch", "v1", "jobs"): Resource("batch", "v1", "jobs", kind="Job", namespaced=True),
}


def required(selector: str) -> dict[str, str | None]:
    """label -> value (None: present) of a selector made of `k=v` and `k` terms."""
    terms = (t.partition("=") for t in selector.split(","))
    return {k: (v if eq else None) for k, eq, v in terms}


def test_configure_sets_the_selectors_and_pages() -> None:
    settings = kopf.OperatorSettings()
    configure(settings)
    assert settings.watching.chunk_size == LIST_CHUNK
    for key, resource in KINDS.items():
        found = settings.watching.label_selectors.collect(resource)
        assert found, key
        assert all("app.kubernetes.io/managed-by=mlkube" in s for s in found)
    custom = Resource("mlkube.dev", "v1alpha1", "models", kind="Model", namespaced=True)
    assert settings.watching.label_selectors.collect(custom) == []  # our own kinds: all


def test_every_handler_on_a_filtered_kind_is_as_strict_as_the_selector() -> None:
    settings = kopf.OperatorSettings()
    configure(settings)
    registry = kopf.get_default_registry()
    checked = 0
    for resource in KINDS.values():
        selectors = settings.watching.label_selectors.collect(resource)
        handlers = [h for h in registry._watching.get_all_handlers() if h.selector is not None
                    and h.selector.check(resource)]  # fmt: skip
        assert handlers, resource
        for handler in handlers:
            labels = dict(handler.labels or {})
            for selector in selectors:
                for key, value in required(selector).items():
                    assert key in labels, (handler.id, key)
                    if value is not None:
                        assert labels[key] == value, (handler.id, key)
                    else:
                        assert labels[key] is kopf.PRESENT or labels[key], (handler.id, key)
            checked += 1
    assert checked >= 4  # Deployments, pods, and the two kinds of Jobs


def test_the_selector_terms_parse() -> None:
    assert required(WATCH_SELECTORS[("v1", "pods")]) == {
        "app.kubernetes.io/managed-by": "mlkube",
        "mlkube.dev/endpoint": None,
    }
