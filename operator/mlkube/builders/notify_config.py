"""Operator settings for notifications (docs/notifications.md): the cluster-wide default sink,
the outbox file and its bounds.

Apart from operator_config.py (already long) but parsed with it: `parse_operator_config` calls
`parse_notify_config` once, so a bad value fails the operator at start, not at the first event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Final
from urllib.parse import urlsplit

from mlkube.api.duration import parse_duration

ENV_EVENT_SINK_URI: Final = "MLKUBE_EVENT_SINK_URI"  # the default sink; unset: none
ENV_EVENT_SINK_FORMAT: Final = "MLKUBE_EVENT_SINK_FORMAT"  # cloudevents | azureml
ENV_EVENT_SINK_MODE: Final = "MLKUBE_EVENT_SINK_MODE"  # binary | structured
ENV_OUTBOX_PATH: Final = "MLKUBE_OUTBOX_PATH"  # the SQLite outbox file
# A fresh outbox marks events the state implies that are older than this as seen, unsent
# ("10m", "1h", or seconds): a rescheduled operator does not replay the cluster's history.
ENV_EVENTS_REPLAY_WINDOW: Final = "MLKUBE_EVENTS_REPLAY_WINDOW"
ENV_OUTBOX_MAX_EVENTS: Final = "MLKUBE_OUTBOX_MAX_EVENTS"  # pending deliveries kept at most
# The chart mounts a volume here (emptyDir, or a PVC with notifications.persistence.enabled).
OUTBOX_DIR: Final = "/var/lib/mlkube"
DEFAULT_OUTBOX_PATH: Final = f"{OUTBOX_DIR}/outbox.db"
DEFAULT_REPLAY_WINDOW: Final = 600.0
DEFAULT_OUTBOX_MAX_EVENTS: Final = 100_000
FORMATS: Final = ("cloudevents", "azureml")
MODES: Final = ("binary", "structured")


class NotifyConfigError(ValueError):
    """A notification setting has a value that cannot be used."""


@dataclass(frozen=True)
class DefaultSink:
    """The cluster-wide sink from the operator config: every namespace, every type."""

    uri: str
    format: str = "cloudevents"
    mode: str = "binary"


@dataclass(frozen=True)
class NotifyConfig:
    default_sink: DefaultSink | None = None
    outbox_path: str = DEFAULT_OUTBOX_PATH
    replay_window: float = DEFAULT_REPLAY_WINDOW  # seconds
    outbox_max_events: int = DEFAULT_OUTBOX_MAX_EVENTS


def parse_notify_config(env: Mapping[str, str], *, in_cluster: bool) -> NotifyConfig:
    """Settings from the environment (unset or empty ones keep their defaults). Outside a pod
    (a local operator) the outbox defaults to the user's state directory, not /var/lib."""

    def text(key: str) -> str | None:
        return env.get(key, "").strip() or None

    uri = text(ENV_EVENT_SINK_URI)
    format_ = _choice(text(ENV_EVENT_SINK_FORMAT), ENV_EVENT_SINK_FORMAT, FORMATS)
    mode = _choice(text(ENV_EVENT_SINK_MODE), ENV_EVENT_SINK_MODE, MODES)
    if uri is not None:
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            # Not the URL itself: it may hold credentials, and this message goes to the log.
            shown = f"{parts.scheme}://{parts.hostname or ''}" if parts.scheme else "(no scheme)"
            raise NotifyConfigError(f"{ENV_EVENT_SINK_URI}={shown!r}... must be an http(s):// URL")
    path = text(ENV_OUTBOX_PATH) or _default_outbox(env, in_cluster=in_cluster)
    if not PurePosixPath(path).is_absolute():
        raise NotifyConfigError(f"{ENV_OUTBOX_PATH}={path!r} must be an absolute path")
    return NotifyConfig(
        default_sink=DefaultSink(uri, format_, mode) if uri else None,
        outbox_path=path,
        replay_window=parse_window(text(ENV_EVENTS_REPLAY_WINDOW)),
        outbox_max_events=_max_events(text(ENV_OUTBOX_MAX_EVENTS)),
    )


def parse_window(raw: str | None) -> float:
    """Seconds from `600`, `10m` or `1h30m`; unset: 10 minutes; `0`: replay nothing old."""
    if raw is None:
        return DEFAULT_REPLAY_WINDOW
    if raw.isdigit():
        return float(raw)
    try:
        return parse_duration(raw).total_seconds()
    except ValueError as exc:
        raise NotifyConfigError(f"{ENV_EVENTS_REPLAY_WINDOW}: {exc}") from exc


def _max_events(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_OUTBOX_MAX_EVENTS
    if not raw.isdigit() or int(raw) < 1:
        raise NotifyConfigError(f"{ENV_OUTBOX_MAX_EVENTS}={raw!r} must be a positive integer")
    return int(raw)


def _choice(raw: str | None, key: str, allowed: tuple[str, ...]) -> str:
    value = (raw or allowed[0]).lower()
    if value not in allowed:
        raise NotifyConfigError(f"{key}={raw!r}: use one of {', '.join(allowed)}")
    return value


def _default_outbox(env: Mapping[str, str], *, in_cluster: bool) -> str:
    if in_cluster:
        return DEFAULT_OUTBOX_PATH
    state = env.get("XDG_STATE_HOME") or f"{env.get('HOME') or '/tmp'}/.local/state"
    return f"{state}/mlkube/outbox.db"
