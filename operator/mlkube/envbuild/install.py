"""The build pod's `install` step, run with the BASE image's python3 (docs/environments.md §2.1).

    python3 /tools/mlkube/envbuild/install.py --spec /inputs/build.json --layer /layer --work /work

Writes what the new layer adds under --layer (pip into `<layer><sys.prefix>`, apt packages,
files, whiteouts for replaced base distributions) and `<work>/report.json` for the push step.
With --probe nothing is installed: only the report (for `image:` environments). A failure
prints `error: <reason>: <message>`, writes it to the termination log and exits 1.

The spec (the build ConfigMap's build.json) is JSON: {"pip": [requirement lines], "conda":
<parsed environment.yml> | null, "apt": [package names], "files": [{"path", "content",
"mode"}], "pipSettings": {"indexUrl", "extraIndexUrls", "findLinks", "noIndex",
"trustedHosts"}, "aptSources": [deb lines]}; pip settings default to the MLKUBE_BUILD_PIP_*
environment variables.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run as a script: see _script.py
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from mlkube.envbuild._script import run_as_package

    run_as_package(__file__)

import argparse
import json
import os
import platform
import sys
from typing import Any

from mlkube.envbuild import aptstep, conda, pipstep, report, whiteouts
from mlkube.envbuild.contract import REPORT_FILE, TERMINATION_LOG, write_termination
from mlkube.envbuild.pipstep import BuildError, PipSettings

MAX_FILES_BYTES = 64 << 10


def settings_from(spec: dict[str, Any]) -> PipSettings:
    given = spec.get("pipSettings") or {}
    env = os.environ

    def many(key: str, var: str) -> tuple[str, ...]:
        value = given.get(key)
        if value is None:
            value = [v for v in env.get(var, "").replace(",", " ").split() if v]
        return tuple(str(v) for v in value)

    no_index = given.get("noIndex")
    if no_index is None:
        no_index = env.get("MLKUBE_BUILD_PIP_NO_INDEX", "").lower() in ("1", "true", "yes")
    return PipSettings(
        index_url=str(given.get("indexUrl") or env.get("MLKUBE_BUILD_PIP_INDEX_URL", "")),
        extra_index_urls=many("extraIndexUrls", "MLKUBE_BUILD_PIP_EXTRA_INDEX_URLS"),
        find_links=many("findLinks", "MLKUBE_BUILD_PIP_FIND_LINKS"),
        no_index=bool(no_index),
        trusted_hosts=many("trustedHosts", "MLKUBE_BUILD_PIP_TRUSTED_HOSTS"),
    )


def write_files(files: list[dict[str, Any]], layer: str) -> list[str]:
    total = sum(len(str(f.get("content", "")).encode()) for f in files)
    if total > MAX_FILES_BYTES:
        raise BuildError(f"files hold {total} bytes; at most {MAX_FILES_BYTES} are allowed")
    written = []
    for entry in files:
        path = os.path.normpath("/" + str(entry["path"]))
        dest = os.path.join(layer, path.lstrip("/"))
        os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
        with open(dest, "w") as handle:
            handle.write(str(entry.get("content", "")))
        mode = entry.get("mode", 0o644)
        os.chmod(dest, int(mode, 8) if isinstance(mode, str) else int(mode))
        written.append(path)
    return written


def build(spec: dict[str, Any], layer: str, work: str, probe: bool) -> dict[str, Any]:
    requirements = [str(r) for r in spec.get("pip") or []]
    if spec.get("conda") is not None:
        parsed = conda.parse(spec["conda"])
        if parsed.unsupported:
            raise BuildError(
                "conda packages cannot be installed by mlkube builds: "
                + ", ".join(parsed.unsupported)
                + " (list them under `pip:` or use `apt`)",
                reason="CondaPackagesUnsupported",
            )
        if not conda.python_matches(parsed.python, platform.python_version()):
            raise BuildError(
                f"the conda file wants python={parsed.python} but the base image has "
                f"Python {platform.python_version()}; pick a base with that Python",
                reason="PythonMismatch",
            )
        requirements += list(parsed.pip)
    out: dict[str, Any] = {"installed": [], "apt": [], "files": [], "whiteouts": []}
    site_dirs: list[str] = []
    if not probe:
        settings = settings_from(spec)
        resolved = pipstep.resolve(requirements, settings, work) if requirements else []
        prefix = pipstep.install(resolved, settings, layer, work)
        site_dirs = pipstep.site_dirs(prefix)
        replaced = {whiteouts.canonical(r.name) for r in resolved}
        base_path = [p for p in report.image_sys_path() if os.path.isdir(p)]
        out["whiteouts"] = whiteouts.add_whiteouts(layer, replaced, base_path)
        out["installed"] = [f"{r.name}=={r.version}" for r in resolved]
        out["apt"] = aptstep.install_apt(
            [str(p) for p in spec.get("apt") or []],
            [str(s) for s in spec.get("aptSources") or []],
            layer,
            work,
        )
        out["files"] = write_files(list(spec.get("files") or []), layer)
    image_dirs = ["/" + os.path.relpath(d, layer) for d in site_dirs]
    out.update(report.python_info())
    out["siteDirs"] = image_dirs
    out["pythonPath"] = [d for d in image_dirs if d not in out["sysPath"]]
    out["packages"] = report.list_packages(site_dirs, set(out["whiteouts"]))
    out["serving"] = report.serving_check(site_dirs)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="install.py", description=__doc__.split("\n")[0])
    parser.add_argument("--spec", required=True, help="build.json (see the module docstring)")
    parser.add_argument("--layer", required=True, help="the new layer's root directory")
    parser.add_argument("--work", required=True, help="scratch space; report.json goes here")
    parser.add_argument("--probe", action="store_true", help="only report on the base image")
    parser.add_argument(
        "--termination-log", default=os.environ.get("MLKUBE_TERMINATION_LOG", TERMINATION_LOG)
    )
    args = parser.parse_args(argv)
    try:
        with open(args.spec) as handle:
            spec = json.load(handle)
        os.makedirs(args.layer, exist_ok=True)
        os.makedirs(args.work, exist_ok=True)
        result = build(spec, args.layer, args.work, args.probe)
    except (BuildError, OSError, ValueError, KeyError) as exc:
        reason = getattr(exc, "reason", "BuildFailed")
        line = f"error: {reason}: {exc}"
        print(line, file=sys.stderr, flush=True)
        write_termination(
            args.termination_log, json.dumps({"error": str(exc)[-3000:], "reason": reason})
        )
        return 1
    with open(os.path.join(args.work, REPORT_FILE), "w") as handle:
        json.dump(result, handle, indent=1, sort_keys=True)
    if args.probe:  # an `image:` environment: this container is the whole report
        _report_probe(result, args.termination_log)
        return 0
    print(
        f"install: {len(result['installed'])} pip packages, {len(result['apt'])} apt packages, "
        f"{len(result['files'])} files, {len(result['whiteouts'])} whiteouts; "
        f"serving compatible: {result['serving'].get('compatible')}",
        flush=True,
    )
    return 0


def _report_probe(result: dict[str, Any], termination_log: str) -> None:
    """What push reports for a build, for a probe: Python and the serving contract in the
    termination message (≤ 4 KiB), the package list as one log line."""
    serving = dict(result.get("serving") or {})
    message = json.dumps(
        {"python": result.get("python"), "serving": serving}, separators=(",", ":"), sort_keys=True
    )
    if len(message.encode()) > 4096:  # only the serving message can be long
        serving["message"] = "(see the log)"
        message = json.dumps(
            {"python": result.get("python"), "serving": serving},
            separators=(",", ":"),
            sort_keys=True,
        )
    print(json.dumps({"mlkubePackages": result.get("packages") or []}), flush=True)
    write_termination(termination_log, message)


if __name__ == "__main__":
    sys.exit(main())
