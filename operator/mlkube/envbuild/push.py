"""The build pod's `push` step: the layer as a blob, the new config and manifest, the tag.

    python -m mlkube.envbuild.push --layer /layer --work /work --base <image@digest>
        --repository <registry/prefix/environments> --build-key sha256:… --environment n:v
        [--spec /inputs/build.json] [--docker-config /push-secret] [--insecure host[:port]]…

Base layers are mounted from the base repository when it lives in the same registry (else
copied), the layer and config are uploaded, and the manifest is PUT under `build-<key32>`.
The result (digest, image, sizes, Python, serving contract) goes to the termination log
(≤ 4 KiB) and the package list to stdout as one `{"mlkubePackages": [...]}` line.
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
import sys
from typing import Any

from mlkube.envbuild import contract as k
from mlkube.envbuild import imageconfig
from mlkube.envbuild.layer import write_layer
from mlkube.oci import Client, OciError, load_docker_config, parse, sha256_digest
from mlkube.oci import mediatypes as mt


def _read_json(path: str) -> Any:
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def push(args: argparse.Namespace) -> dict[str, Any]:
    report = _read_json(os.path.join(args.work, k.REPORT_FILE)) or {}
    model = _read_json(os.path.join(args.work, k.MODEL_REPORT_FILE))
    spec = _read_json(args.spec) if args.spec else {}
    blob = write_layer(args.layer, os.path.join(args.work, "layer.tar.gz"))
    insecure = [
        *args.insecure,
        *filter(
            None, os.environ.get("MLKUBE_BUILD_INSECURE_REGISTRIES", "").replace(",", " ").split()
        ),
    ]
    client = Client(credentials=load_docker_config(args.docker_config), insecure=insecure)

    base_ref = parse(args.base)
    base = client.get_image(base_ref)
    base_config = json.loads(client.get_blob(base.reference, base.config.digest))
    env = {k.ENV_ENVIRONMENT: args.environment}
    if report.get("pythonPath"):
        current = imageconfig.base_env(base_config).get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join([*report["pythonPath"], *filter(None, [current])])
    for item in (spec or {}).get("env") or []:
        env[str(item["name"])] = str(item.get("value", ""))
    labels = {
        k.LABEL_BUILD_KEY: args.build_key,
        k.LABEL_ENVIRONMENT: args.environment,
        k.LABEL_PACKAGES: k.encode_packages(list(report.get("packages") or [])),
        k.LABEL_PYTHON: str(report.get("python", "")),
        k.LABEL_SERVING: _compact(_serving(report)),
    }
    if model:
        labels[k.LABEL_PACKAGED_MODEL] = _compact(_packaged(model))
    config = imageconfig.new_config(
        base_config,
        diff_id=blob.diff_id,
        env=env,
        labels=labels,
        created_by=f"mlkube envbuild {args.environment} ({args.build_key})",
    )
    config_raw = imageconfig.canonical(config)
    config_digest = sha256_digest(config_raw)

    target = parse(f"{args.repository}:{k.build_tag(args.build_key)}")
    for layer in base.layers:
        if client.blob_exists(target, layer.digest):
            continue
        same_registry = target.registry == base_ref.registry
        if not (same_registry and client.mount_blob(target, layer.digest, base_ref.repository)):
            client.copy_blob(base.reference, target, layer.digest)
    client.upload_blob(target, blob.digest, blob.path)
    client.upload_blob(target, config_digest, config_raw)

    media_type = base.manifest.media_type
    manifest = imageconfig.new_manifest(
        base.manifest.json(),
        media_type,
        {"mediaType": base.config.media_type, "digest": config_digest, "size": len(config_raw)},
        {"mediaType": mt.layer_type_for(media_type), "digest": blob.digest, "size": blob.size},
    )
    digest = client.put_manifest(target, imageconfig.canonical(manifest), media_type)
    serving = _serving(report)
    result: dict[str, Any] = {
        "digest": digest,
        "image": f"{target.name}@{digest}",
        "tag": target.tag,
        "baseImage": str(base.reference),
        "sizeBytes": sum(layer.size for layer in base.layers) + blob.size,
        "layerBytes": blob.size,
        "layerDigest": blob.digest,
        "python": report.get("python", ""),
        "serving": serving,
        "packageCount": len(report.get("packages") or []),
    }
    if model:
        result["packagedModel"] = _packaged(model)
    return {"result": result, "packages": list(report.get("packages") or [])}


def _serving(report: dict[str, Any]) -> dict[str, Any]:
    serving = dict(report.get("serving") or {})
    serving["message"] = str(serving.get("message", ""))[:1000]
    return serving


def _packaged(model: dict[str, Any]) -> dict[str, str]:
    return {"name": str(model.get("name", "")), "artifactDigest": str(model["digest"])}


def _compact(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def termination_message(result: dict[str, Any]) -> str:
    text = json.dumps(result, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) > k.TERMINATION_LIMIT:  # only the serving message can be long
        result = {**result, "serving": {**result["serving"], "message": "(see the log)"}}
        text = json.dumps(result, separators=(",", ":"), sort_keys=True)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="push.py", description=__doc__.split("\n")[0])
    parser.add_argument("--layer", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--base", required=True, help="the base image, pinned by digest")
    parser.add_argument("--repository", required=True, help="registry/prefix/environments")
    parser.add_argument("--build-key", required=True)
    parser.add_argument("--environment", required=True, help="name:version")
    parser.add_argument("--spec", default="", help="build.json (for its `env`)")
    parser.add_argument(
        "--docker-config",
        default=None,
        help="docker config JSON file or mounted dockerconfigjson Secret dir",
    )
    parser.add_argument(
        "--insecure",
        action="append",
        default=[],
        help="registry host[:port] reached over plain HTTP",
    )
    parser.add_argument(
        "--termination-log", default=os.environ.get("MLKUBE_TERMINATION_LOG", k.TERMINATION_LOG)
    )
    args = parser.parse_args(argv)
    try:
        out = push(args)
        message = termination_message(out["result"])
    except (OciError, OSError, ValueError, KeyError) as exc:
        print(f"error: PushFailed: {exc}", file=sys.stderr, flush=True)
        message = json.dumps({"error": str(exc)[-3000:], "reason": "PushFailed"})
        k.write_termination(args.termination_log, message)
        return 1
    print(message, flush=True)
    print(k.packages_line(out["packages"]), flush=True)
    k.write_termination(args.termination_log, message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
