"""Operator settings for Environment builds (docs/environments.md §2.3): registry, Secrets,
build namespace, tools image, deadline, pip and apt sources, curated images.

Parsed once from the operator's environment (chart values `build.*`, `curatedEnvironments`)
into a frozen `BuildConfig` held by `OperatorConfig.build`; a bad value stops the operator at
start with a message naming the variable, rather than failing every build later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from mlkube.environments.curated import CURATED, curated_names
from mlkube.reconcile.environment_key import PipSettings

ENV_BUILD_REGISTRY: Final = "MLKUBE_BUILD_REGISTRY"  # host[:port]/prefix
ENV_BUILD_REGISTRY_INSECURE: Final = "MLKUBE_BUILD_REGISTRY_INSECURE"
ENV_BUILD_PUSH_SECRET: Final = "MLKUBE_BUILD_PUSH_SECRET"
ENV_IMAGE_PULL_SECRET: Final = "MLKUBE_IMAGE_PULL_SECRET"
ENV_BUILD_NAMESPACE: Final = "MLKUBE_BUILD_NAMESPACE"
ENV_BUILD_TOOLS_IMAGE: Final = "MLKUBE_BUILD_TOOLS_IMAGE"
ENV_BUILD_TIMEOUT: Final = "MLKUBE_BUILD_TIMEOUT_SECONDS"
ENV_PIP_INDEX_URL: Final = "MLKUBE_BUILD_PIP_INDEX_URL"
ENV_PIP_EXTRA_INDEX_URLS: Final = "MLKUBE_BUILD_PIP_EXTRA_INDEX_URLS"
ENV_PIP_FIND_LINKS: Final = "MLKUBE_BUILD_PIP_FIND_LINKS"
ENV_PIP_NO_INDEX: Final = "MLKUBE_BUILD_PIP_NO_INDEX"
ENV_PIP_TRUSTED_HOSTS: Final = "MLKUBE_BUILD_PIP_TRUSTED_HOSTS"
ENV_APT_SOURCES: Final = "MLKUBE_BUILD_APT_SOURCES"  # deb lines, newline- or ';'-separated
ENV_CURATED: Final = "MLKUBE_CURATED_ENVIRONMENTS"  # mlkube-sklearn=<image>,...
DEFAULT_BUILD_TIMEOUT: Final = 1800
ENVIRONMENTS_REPOSITORY: Final = "environments"
PACKAGES_REPOSITORY: Final = "packages"
_HOST: Final = re.compile(
    r"^(localhost|[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$"
)
# OCI distribution: path components of a repository name.
_COMPONENT: Final = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$")
_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_TRUE: Final = ("1", "true", "yes", "on")
_FALSE: Final = ("", "0", "false", "no", "off")


class BuildConfigError(ValueError):
    """A build setting that cannot be used (the message names the variable)."""


@dataclass(frozen=True)
class BuildConfig:
    registry: str | None = None  # host[:port]; None: builds report NoRegistry
    repository_prefix: str = ""  # "team/mlkube": repositories <prefix>/environments
    registry_insecure: bool = False  # plain HTTP to the registry
    push_secret: str | None = None  # dockerconfigjson Secret in the build namespace
    image_pull_secret: str | None = None  # added to pods that run environment images
    namespace: str | None = None  # None: the operator's namespace
    tools_image: str | None = None  # None: the serving image
    timeout_seconds: int = DEFAULT_BUILD_TIMEOUT
    pip: PipSettings = field(default_factory=PipSettings)
    apt_sources: tuple[str, ...] = ()
    curated: tuple[tuple[str, str], ...] = ()  # (curated name, image) configured explicitly

    def repository(self, kind: str = ENVIRONMENTS_REPOSITORY) -> str:
        """`<prefix>/environments` (or `<prefix>/packages`), without the registry host."""
        return f"{self.repository_prefix}/{kind}" if self.repository_prefix else kind

    def image_repository(self, kind: str = ENVIRONMENTS_REPOSITORY) -> str | None:
        """`host[:port]/<prefix>/environments`, or None without a registry."""
        return f"{self.registry}/{self.repository(kind)}" if self.registry else None


def build_namespace(config: BuildConfig, operator_namespace: str) -> str:
    return config.namespace or operator_namespace


def _flag(env: Mapping[str, str], key: str) -> bool:
    raw = env.get(key, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise BuildConfigError(f"{key}={raw!r} must be true or false")


def _list(env: Mapping[str, str], key: str) -> tuple[str, ...]:
    """Comma- or whitespace-separated values (URLs and host names contain neither)."""
    return tuple(part for part in re.split(r"[,\s]+", env.get(key, "")) if part)


def _name(env: Mapping[str, str], key: str) -> str | None:
    value = env.get(key, "").strip() or None
    if value is not None and (len(value) > 253 or not _DNS_LABEL.match(value.replace(".", "-"))):
        raise BuildConfigError(f"{key}={value!r} is not a Kubernetes object name")
    return value


def parse_registry(text: str) -> tuple[str, str]:
    """`host[:port]/prefix` → (host[:port], prefix); the prefix may be empty."""
    if "://" in text:
        raise BuildConfigError(
            f"{ENV_BUILD_REGISTRY}={text!r}: write host[:port]/prefix without a scheme "
            f"(plain HTTP: {ENV_BUILD_REGISTRY_INSECURE}=true)"
        )
    host, _, prefix = text.strip().strip("/").partition("/")
    if not _HOST.match(host):
        raise BuildConfigError(f"{ENV_BUILD_REGISTRY}={text!r}: {host!r} is not host[:port]")
    components = prefix.split("/") if prefix else []
    if not all(_COMPONENT.match(c) for c in components):
        raise BuildConfigError(
            f"{ENV_BUILD_REGISTRY}={text!r}: the repository prefix must be lower-case path "
            "components ([a-z0-9] separated by '.', '_' or '-')"
        )
    return host, "/".join(components)


def parse_apt_sources(text: str) -> tuple[str, ...]:
    """`deb [options] uri suite [components]` lines, one per line or separated by ';'."""
    lines = tuple(" ".join(part.split()) for part in re.split(r"[;\n]", text) if part.strip())
    for line in lines:
        words = line.split()
        if words[0] != "deb" or len([w for w in words[1:] if not w.startswith("[")]) < 2:
            raise BuildConfigError(
                f"{ENV_APT_SOURCES}: {line!r} is not a 'deb [options] uri suite [components]' line"
            )
        if any("@" in urlsplit(w).netloc for w in words if "://" in w):
            raise BuildConfigError(
                f"{ENV_APT_SOURCES}: a URL with user:password@ would put the credentials in "
                "build ConfigMaps; use a repository that needs none"
            )
    return lines


def parse_curated(text: str) -> tuple[tuple[str, str], ...]:
    """`mlkube-sklearn=<image>,mlkube-onnx=<image>` as sorted (name, image) pairs."""
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, image = (s.strip() for s in item.partition("="))
        if not sep or not image or any(ch.isspace() for ch in image):
            raise BuildConfigError(f"{ENV_CURATED}: {item!r} is not name=image")
        if name not in CURATED:
            known = ", ".join(curated_names())
            raise BuildConfigError(
                f"{ENV_CURATED}: {name!r} is not a curated environment ({known})"
            )
        pairs[name] = image
    return tuple(sorted(pairs.items()))


def _timeout(env: Mapping[str, str]) -> int:
    raw = env.get(ENV_BUILD_TIMEOUT, "").strip()
    if not raw:
        return DEFAULT_BUILD_TIMEOUT
    if not raw.isdigit() or int(raw) < 60:
        raise BuildConfigError(f"{ENV_BUILD_TIMEOUT}={raw!r} must be a whole number >= 60")
    return int(raw)


def parse_build_config(env: Mapping[str, str]) -> BuildConfig:
    """The build settings from environment variables (unset or empty: defaults)."""
    registry, prefix = None, ""
    if env.get(ENV_BUILD_REGISTRY, "").strip():
        registry, prefix = parse_registry(env[ENV_BUILD_REGISTRY])
    index_url = env.get(ENV_PIP_INDEX_URL, "").strip() or None
    pip = PipSettings(
        index_url=index_url,
        extra_index_urls=_list(env, ENV_PIP_EXTRA_INDEX_URLS),
        find_links=_list(env, ENV_PIP_FIND_LINKS),
        no_index=_flag(env, ENV_PIP_NO_INDEX),
        trusted_hosts=_list(env, ENV_PIP_TRUSTED_HOSTS),
    )
    for name, urls in ((ENV_PIP_INDEX_URL, [index_url] if index_url else []),
                       (ENV_PIP_EXTRA_INDEX_URLS, pip.extra_index_urls),
                       (ENV_PIP_FIND_LINKS, pip.find_links)):  # fmt: skip
        if any("@" in urlsplit(u).netloc for u in urls):
            # They go into every build's ConfigMap and the build key document, and pip
            # prints them: secrets reach a build only from Secrets (the push Secret).
            raise BuildConfigError(
                f"{name}: a URL with user:password@ would put the credentials in build "
                "ConfigMaps and logs; point the builds at an index that needs none (a mirror "
                "inside the cluster)"
            )
    if pip.no_index and not pip.find_links:
        raise BuildConfigError(
            f"{ENV_PIP_NO_INDEX}=true needs {ENV_PIP_FIND_LINKS}: pip would find no packages"
        )
    return BuildConfig(
        registry=registry,
        repository_prefix=prefix,
        registry_insecure=_flag(env, ENV_BUILD_REGISTRY_INSECURE),
        push_secret=_name(env, ENV_BUILD_PUSH_SECRET),
        image_pull_secret=_name(env, ENV_IMAGE_PULL_SECRET),
        namespace=_name(env, ENV_BUILD_NAMESPACE),
        tools_image=env.get(ENV_BUILD_TOOLS_IMAGE, "").strip() or None,
        timeout_seconds=_timeout(env),
        pip=pip,
        apt_sources=parse_apt_sources(env.get(ENV_APT_SOURCES, "")),
        curated=parse_curated(env.get(ENV_CURATED, "")),
    )
