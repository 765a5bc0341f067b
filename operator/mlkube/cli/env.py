"""`mlkube env create|list|show|archive|build-logs`: environments from the command line.

Argument handling and I/O only: the object is built in `env_object`, rendered in `env_view`,
waited for in `env_wait`; the API is `env_api`'s and build logs are `env_logs`'. Inputs are
checked before connecting (a bad requirements file is reported without a cluster); the API
server's CEL messages are shown as they are (docs/environments.md §1, §7).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlkube.cli import env_curated, env_logs, env_object, env_wait
from mlkube.cli import env_view as view
from mlkube.cli.batch_api import pod_logs
from mlkube.cli.batch_follow import wait_timeout
from mlkube.cli.endpoint_api import connect
from mlkube.cli.env_api import (
    FIELD_MANAGER,
    archive,
    build_job,
    build_pods,
    create,
    environment_base,
    find_environment,
    get_environment,
    list_environments,
)
from mlkube.cli.errors import CliError
from mlkube.cli.kube import add_kube_options
from mlkube.cli.manifests import read_manifests
from mlkube.cli.model_view import as_list, dump, without_managed_fields
from mlkube.contract import GROUP, LABEL_ARCHIVED


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = subparsers.add_parser(
        "env", help="environments: create (pip, conda, image), list, show, archive, build-logs"
    )
    verbs = group.add_subparsers(dest="verb", required=True, metavar="<verb>")

    create_cmd = verbs.add_parser("create", help="create an Environment (the cluster builds it)")
    create_cmd.add_argument("-f", "--filename", help="Environment YAML ('-' for stdin)")
    create_cmd.add_argument("--name", help="environment name (a DNS label)")
    create_cmd.add_argument("--version", help="environment version, e.g. 1 or 2.0.1")
    create_cmd.add_argument("--image", help="an existing image (a tag is pinned to its digest)")
    create_cmd.add_argument("--pip", metavar="REQUIREMENTS_TXT", help="pip requirements file")
    create_cmd.add_argument("--conda", metavar="ENV_YML", help="conda environment file "
                            "(python=X.Y and its pip: list are honoured)")  # fmt: skip
    create_cmd.add_argument("--base", help="curated environment, one of your environments "
                            f"(NAME:VERSION) or an image to build on (default "
                            f"{env_curated.DEFAULT_BASE})")  # fmt: skip
    create_cmd.add_argument("--apt", action="append", default=[], metavar="PACKAGE",
                            help="Debian package to add (repeatable)")  # fmt: skip
    create_cmd.add_argument("--file", action="append", default=[], metavar="LOCAL:/PATH",
                            help="bake a small text file into the image (repeatable)")  # fmt: skip
    create_cmd.add_argument("--description", help="free-text description")
    env_wait.add_wait_option(create_cmd)
    create_cmd.set_defaults(func=create_environments)

    list_cmd = verbs.add_parser("list", help="list Environments (archived ones only with --all)")
    list_cmd.add_argument("--all", action="store_true", help="include archived environments")
    list_cmd.add_argument("--curated", action="store_true",
                          help="list the curated environments mlkube ships")  # fmt: skip
    list_cmd.add_argument("-A", "--all-namespaces", action="store_true")
    list_cmd.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    list_cmd.set_defaults(func=list_cmd_run)

    show = verbs.add_parser("show", help="image, digest, size, packages, users and build")
    show.add_argument("environment", help="NAME:VERSION (or the object name)")
    show.add_argument("-o", "--output", choices=("text", "yaml", "json"), default="text")
    show.set_defaults(func=show_environment)

    archive_cmd = verbs.add_parser("archive", help="hide from `list` and refuse new references")
    archive_cmd.add_argument("environment", help="NAME:VERSION (or the object name)")
    archive_cmd.set_defaults(func=archive_environment)

    logs = verbs.add_parser("build-logs", help="the build pod's logs (install, push)")
    logs.add_argument("environment", help="NAME:VERSION (or the object name)")
    logs.add_argument("--follow", action="store_true", help="print new lines until it ends")
    logs.set_defaults(func=build_logs)

    for verb in (create_cmd, list_cmd, show, archive_cmd, logs):
        add_kube_options(verb)


def read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc


def environments_from_args(args: argparse.Namespace, namespace: str) -> list[dict[str, Any]]:
    """The Environments to create: the YAML file's, or the one the flags describe."""
    flags = [f"--{k}" for k in ("name", "version", "image", "pip", "conda", "base",
                                "description") if getattr(args, k)]  # fmt: skip
    flags += ["--apt"] * bool(args.apt) + ["--file"] * bool(args.file)
    if args.filename:
        if flags:
            raise CliError(f"-f takes the whole Environment from the file; drop {flags[0]}")
        return read_manifests(read_text(args.filename), namespace, [env_object.KIND],
                              env_object.check_spec)  # fmt: skip
    if not (args.name and args.version):
        raise CliError("give -f env.yaml, or --name and --version with --image, --pip or --conda")
    name, version = env_object.check_name(args.name), env_object.check_version(args.version)
    if args.image:
        extra = [f for f in flags if f in ("--pip", "--conda", "--base", "--apt", "--file")]
        if extra:
            raise CliError(f"--image uses an existing image as it is; {extra[0]} needs a build "
                           "(drop --image, or build FROM it with --base IMAGE)")  # fmt: skip
        return [
            env_object.build_environment(
                name=name,
                version=version,
                namespace=namespace,
                image=args.image,
                description=args.description,
            )
        ]
    if not (args.pip or args.conda or args.apt or args.file):
        raise CliError("nothing to build: give --image, or --pip, --conda, --apt or --file")
    build = env_object.BuildInputs(
        base=args.base or env_curated.DEFAULT_BASE,
        pip=env_object.requirement_lines(read_text(args.pip), args.pip) if args.pip else (),
        conda=env_object.check_conda(read_text(args.conda), args.conda) if args.conda else None,
        apt=list(dict.fromkeys(args.apt)),
        files=env_object.read_files(args.file),
    )
    return [
        env_object.build_environment(
            name=name,
            version=version,
            namespace=namespace,
            build=build,
            description=args.description,
        )
    ]


def create_environments(args: argparse.Namespace) -> int:
    timeout = wait_timeout(args)
    # Checked before connecting: bad inputs are reported even without a cluster.
    environments_from_args(args, args.namespace or "default")
    kube, namespace = connect(args)
    created = []
    for body in environments_from_args(args, namespace):
        ref, ns = env_object.reference(body), body["metadata"]["namespace"]
        image = None if args.filename or not args.base else environment_base(kube, ns, args.base)
        if image is not None:  # built on one of your Environments: on its digest
            body["spec"]["build"]["base"] = image
            body["spec"].setdefault("description", f"built on environment {args.base}")
            print(f"base {args.base}: {image}")
        existing = find_environment(kube, ns, ref)
        if existing is not None:
            raise CliError(f"Environment {ref} already exists in {ns} (object "
                           f"{existing['metadata']['name']}); versions are immutable: create "
                           "a new version")  # fmt: skip
        obj = create(kube, body, FIELD_MANAGER)
        print(f"environment.{GROUP}/{obj['metadata']['name']} created in namespace {ns} "
              f"({ref})", flush=True)  # fmt: skip
        created.append(obj)
    if args.wait is None:
        refs = " ".join(env_object.reference(o) for o in created)
        print(
            f"follow it with: mlkube env show {refs} -n {namespace} "
            f"(build logs: mlkube env build-logs {env_object.reference(created[0])} --follow)"
        )
        return 0
    code = 0
    for obj in created:
        code = max(code, env_wait.wait_and_report(kube, obj, timeout))
    return code


def list_cmd_run(args: argparse.Namespace) -> int:
    if args.curated:
        entries = env_curated.catalogue()
        if args.output == "table":
            print(view.render_curated(entries))
        else:
            print(dump(entries, args.output))
        return 0
    kube, namespace = connect(args)
    items = list_environments(kube, None if args.all_namespaces else namespace)
    if not args.all:
        items = [o for o in items
                 if (o["metadata"].get("labels") or {}).get(LABEL_ARCHIVED) != "true"]  # fmt: skip
    if args.output == "table":
        print(view.render_table(items, datetime.now(UTC), namespaces=args.all_namespaces))
    else:
        ordered = [without_managed_fields(o) for o in view.sort_environments(items)]
        print(dump(as_list(ordered), args.output))
    return 0


def show_environment(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    obj = get_environment(kube, namespace, args.environment)
    if args.output == "text":
        print(view.render_details(obj, datetime.now(UTC)))
    else:
        print(dump(without_managed_fields(obj), args.output))
    return 0


def archive_environment(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    obj = get_environment(kube, namespace, args.environment)
    ref, name = env_object.reference(obj), obj["metadata"]["name"]
    if (obj["metadata"].get("labels") or {}).get(LABEL_ARCHIVED) == "true":
        print(f"environment.{GROUP}/{name} ({ref}) is already archived", file=sys.stderr)
        return 0
    archive(kube, obj)
    print(f"environment.{GROUP}/{name} ({ref}) archived (hidden from `mlkube env list`; "
          "new references are refused, existing users keep working)")  # fmt: skip
    return 0


def build_logs(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    obj: Mapping[str, Any] = get_environment(kube, namespace, args.environment)
    if build_job(obj) is None and args.follow:
        obj = env_wait.wait_for_build_job(kube, obj)
    job, ref = build_job(obj), env_object.reference(obj)
    if job is None:
        phase = (obj.get("status") or {}).get("phase") or "Pending"
        raise CliError(f"Environment {ref} has no build Job yet (phase {phase}; "
                       f"see `mlkube env show {ref}`)")  # fmt: skip
    job_ns, job_name = job
    if ((obj.get("status") or {}).get("build") or {}).get("reused"):
        print(f"{ref} reused an identical build: the logs of the Job that built it follow",
              file=sys.stderr)  # fmt: skip
    pods = build_pods(kube, job_ns, job_name)
    for _ in range(60 if args.follow and not pods else 0):  # the Job controller is starting it
        time.sleep(1)
        pods = build_pods(kube, job_ns, job_name)
        if pods:
            break
    if not pods:
        raise CliError(f"build Job {job_ns}/{job_name} has no pods: it has not started yet, "
                       "or it ended over a day ago and was cleaned up (see "
                       f"`mlkube env show {ref}` for the build's outcome)")  # fmt: skip
    pod_name = pods[-1]["metadata"]["name"]

    def read(_pod: object, container: str) -> str:
        return pod_logs(kube, job_ns, pod_name, container)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    if args.follow:
        env_logs.follow(lambda: kube.get("v1", "Pod", pod_name, job_ns), read, write,
                        note=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    elif not env_logs.print_all(pods[-1], lambda name: read(None, name), write):
        why = "; ".join(env_logs.waiting_reasons(pods[-1]))
        print(
            f"build pod {job_ns}/{pod_name} has not started a container yet"
            + (f" ({why})" if why else " (use --follow to wait for it)"),
            file=sys.stderr,
        )
    return 0
