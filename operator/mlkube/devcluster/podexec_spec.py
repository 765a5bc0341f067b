"""What the dev pod executor runs for a pod, decided without I/O (see podexec.py).

A kubelet turns a pod spec into containers: volumes, mounts, environment, command line. The
dev executor does the same for local processes, so these rules are pure and unit-tested:
mount paths become per-pod local directories (rewritten wherever they appear in arguments
and environment values), env is resolved as the kubelet resolves it (envFrom, then env in
order, `$(VAR)` references to earlier variables, fieldRefs into the pod's metadata), and
only `python` commands run, bare or in a `/bin/sh -c` wrapper (podexec_command); anything
else is refused.
"""

from __future__ import annotations

import base64
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlkube.devcluster.podexec_command import Refused as Refused
from mlkube.devcluster.podexec_command import build_argv, expand, search_path
from mlkube.devcluster.podexec_paths import Mount as Mount
from mlkube.devcluster.podexec_paths import mount_parents
from mlkube.devcluster.podexec_paths import rewrite as rewrite

TERMINATION_ENV = "MLKUBE_TERMINATION_LOG"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
# A source of Secret/ConfigMap data: (kind, name) -> decoded data, or None when it is missing.
Lookup = Callable[[str, str], "Mapping[str, str] | None"]


class NotYet(Exception):
    """The pod cannot start yet (a Secret or ConfigMap it needs is missing): a kubelet keeps it
    Pending with CreateContainerConfigError and retries, so does the executor."""


@dataclass
class ContainerRun:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    termination: Path
    fallback_to_logs: bool = False
    mounts: list[Mount] = field(default_factory=list)
    links: dict[Path, Path] = field(default_factory=dict)  # symlink -> target (mount_parents)


def pod_dir(work_dir: Path, pod: Mapping[str, Any]) -> Path:
    """`<work>/pods/<namespace>_<name>_<uid>/`, the kubelet's /var/log/pods layout."""
    meta = pod["metadata"]
    return work_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"


def container_log(work_dir: Path, pod: Mapping[str, Any], container: str) -> Path:
    """Where a container's stdout and stderr are kept (`<pod dir>/<container>/0.log`), for a
    reader such as `mlkube batch jobs logs` in the dev cluster; it outlives the pod's run."""
    return pod_dir(work_dir, pod) / container / "0.log"


def volume_dirs(pod: Mapping[str, Any], root: Path) -> dict[str, Path]:
    """Local directory per pod volume; refuses volume types the executor does not map."""
    dirs: dict[str, Path] = {}
    for vol in pod["spec"].get("volumes") or []:
        kinds = set(vol) - {"name"}
        if not kinds <= {"emptyDir", "secret", "configMap", "projected"}:
            raise Refused(
                f"volume {vol['name']!r} ({', '.join(sorted(kinds))}) is not supported by the "
                "dev pod executor (emptyDir, secret, configMap and projected only)"
            )
        dirs[vol["name"]] = root / "volumes" / vol["name"]
    return dirs


def volume_files(vol: Mapping[str, Any], lookup: Lookup) -> dict[str, bytes] | None:
    """Files of a secret/configMap/projected volume (relative path -> bytes); {} for an
    emptyDir, None when an object is missing and not optional. A projected volume gets its
    secret and configMap sources only: no service-account token (no API credentials in
    local pods) and no downward API files."""
    if "projected" in vol:
        files: dict[str, bytes] = {}
        for source in vol["projected"].get("sources") or []:
            found = volume_files(source, lookup) if set(source) & {"secret", "configMap"} else {}
            if found is None:
                return None
            files.update(found)
        return files
    if "secret" in vol:
        src = vol["secret"]
        kind, name = "Secret", src.get("secretName") or src.get("name", "")
    elif "configMap" in vol:
        src, kind, name = vol["configMap"], "ConfigMap", vol["configMap"].get("name", "")
    else:
        return {}
    data = lookup(kind, name)
    if data is None:
        return {} if src.get("optional") else None
    items = src.get("items")
    if items is None:
        return {key: value.encode(errors="surrogateescape") for key, value in data.items()}
    files = {}
    for item in items:
        if item["key"] in data:
            files[item["path"]] = data[item["key"]].encode(errors="surrogateescape")
        elif not src.get("optional"):
            return None
    return files


def safe_relative(path: str) -> str:
    """A volume file path or subPath kept inside its volume (no absolute path, no `..`)."""
    norm = posixpath.normpath(path)
    if norm.startswith(("/", "..")) or norm == ".":
        raise Refused(f"path {path!r} escapes its volume")
    return norm


def container_mounts(container: Mapping[str, Any], dirs: Mapping[str, Path]) -> list[Mount]:
    mounts = []
    for m in container.get("volumeMounts") or []:
        if m["name"] not in dirs:
            raise Refused(f"container {container['name']!r} mounts unknown volume {m['name']!r}")
        local = dirs[m["name"]]
        if m.get("subPath"):
            local = local / safe_relative(m["subPath"])
        mounts.append(Mount(posixpath.normpath(m["mountPath"]), local))
    return mounts


def field_value(pod: Mapping[str, Any], path: str) -> str:
    """A downward-API fieldRef (metadata.name, metadata.annotations['k'], status.podIP...)."""
    meta = pod["metadata"]
    if m := re.fullmatch(r"metadata\.(annotations|labels)\['(.+)'\]", path):
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": pod["spec"].get("nodeName"),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName"),
        "status.hostIP": "127.0.0.1",
        "status.podIP": "127.0.0.1",
    }
    if path not in simple:
        raise Refused(f"fieldRef {path!r} is not supported by the dev pod executor")
    return str(simple[path] or "")


def resolve_env(
    container: Mapping[str, Any], pod: Mapping[str, Any], lookup: Lookup
) -> dict[str, str]:
    """The container's environment as a kubelet builds it: envFrom first, then env entries in
    order (each may reference the ones before it)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        kind, ref = (
            ("Secret", source["secretRef"])
            if "secretRef" in source
            else ("ConfigMap", source["configMapRef"])
        )
        data = lookup(kind, ref["name"])
        if data is None:
            if ref.get("optional"):
                continue
            raise NotYet(f"{kind.lower()} {ref['name']!r} not found")
        prefix = source.get("prefix", "")
        env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env") or []:
        name, src = var["name"], var.get("valueFrom")
        if src is None:
            env[name] = expand(var.get("value", ""), env)
        elif "fieldRef" in src:
            env[name] = field_value(pod, src["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in src or "configMapKeyRef" in src:
            kind = "Secret" if "secretKeyRef" in src else "ConfigMap"
            ref = src["secretKeyRef"] if kind == "Secret" else src["configMapKeyRef"]
            value = (lookup(kind, ref["name"]) or {}).get(ref["key"])
            if value is not None:
                env[name] = value
            elif not ref.get("optional"):
                raise NotYet(f"{kind.lower()} {ref['name']!r} key {ref['key']!r} not found")
        else:  # resourceFieldRef: nothing is enforced here, report what was asked for
            ref = src.get("resourceFieldRef", {})
            kind, _, res = str(ref.get("resource", "")).partition(".")
            env[name] = str((container.get("resources") or {}).get(kind, {}).get(res, "0"))
    return env


def decode_data(obj: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's or ConfigMap's data as text (Secret data is base64; bytes that are not UTF-8
    survive as surrogates, and volume files get them back)."""
    if obj.get("kind") == "Secret":
        data = (obj.get("data") or {}).items()
        out = {k: base64.b64decode(v).decode(errors="surrogateescape") for k, v in data}
        out.update(obj.get("stringData") or {})
        return out
    return dict(obj.get("data") or {})


def container_run(
    container: Mapping[str, Any],
    pod: Mapping[str, Any],
    root: Path,
    dirs: Mapping[str, Path],
    lookup: Lookup,
    python: str,
    base_env: Mapping[str, str],
) -> ContainerRun:
    """Everything needed to start one container as a local process."""
    name = container["name"]
    termination = root / name / "termination-log"
    # The termination message file is a path to rewrite like a mount's.
    path = container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
    mounts = [*container_mounts(container, dirs), Mount(path, termination)]
    parents, links = mount_parents(mounts, root / ".fs" / name)  # a dot: no container name
    mounts += parents
    env = {k: rewrite(v, mounts) for k, v in resolve_env(container, pod, lookup).items()}
    tmp = next((m.local for m in mounts if m.path == "/tmp"), root / "tmp")
    full_env = {
        **base_env,
        "HOSTNAME": pod["metadata"]["name"],
        "HOME": str(root / "home"),
        "TMPDIR": str(tmp),
        **env,
        TERMINATION_ENV: str(termination),
    }
    # `python` on PATH is this interpreter too (a shell wrapper's, a program's subprocess).
    full_env["PATH"] = search_path(root, full_env.get("PATH", ""))
    # The interpreter is this machine's, never a path in the pod: a checkout under /tmp
    # (CI clones there) must not be taken for the pod's /tmp mount.
    program, *rest = build_argv(container, full_env, python)
    argv = [program, *(rewrite(a, mounts) for a in rest)]
    workdir = container.get("workingDir")
    # A working directory outside every mount would be a path in the image: there is none.
    local_workdir = rewrite(workdir, mounts) if workdir else ""
    cwd = Path(local_workdir) if local_workdir and local_workdir != workdir else root / "home"
    fallback = container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
    log = root / name / "0.log"  # container_log()
    return ContainerRun(name, argv, full_env, cwd, log, termination, fallback, mounts, links)
