"""`helm lint --strict` (the real helm, hack/helm/build.sh) over the value combinations users
set, and values.schema.json refusing typos and wrong types at lint time as well as at render."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.helm import helm_binary, lint_chart

VARIATIONS = {
    "defaults": [],
    "watch-namespaces-cert-manager": ["watchNamespaces={team-a,team-b}",
                                      "webhook.tls.mode=certManager"],
    "provided-certificate": ["webhook.tls.mode=provided", "webhook.tls.secretName=my-tls",
                             "webhook.tls.caBundle=Q0E="],
    "no-crds-existing-service-account": ["crds.install=false", "serviceAccount.create=false",
                                         "serviceAccount.name=platform-sa"],
    "credentials-and-identity": ["objectStore.s3.existingSecret=s3",
                                 "objectStore.s3.region=eu-west-1",
                                 "objectStore.s3.endpointUrl=http://minio:9000",
                                 "objectStore.gcs.existingSecret=gcs",
                                 "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/x"],
    "scheduling-and-metadata": ["nodeSelector.kubernetes\\.io/os=linux", "priorityClassName=high",
                                "tolerations[0].key=dedicated", "tolerations[0].operator=Exists",
                                "podLabels.team=ml", "podAnnotations.a=b",
                                "image.pullSecrets[0].name=reg",
                                "monitoring.labels.release=prom", "monitoring.labels.scrape=true",
                                "logLevel=debug", "fullnameOverride=ml",
                                "monitoring.serviceMonitor.enabled=true"],
}  # fmt: skip


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_binary()


@pytest.mark.parametrize("values", list(VARIATIONS.values()), ids=list(VARIATIONS))
def test_lint_strict_passes(helm: Path, values: list[str]) -> None:
    assert "1 chart(s) linted, 0 chart(s) failed" in lint_chart(helm, values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["logLevl=debug"], "additional properties 'logLevl' not allowed"),
        (["webhook.tls.mod=provided"], "additional properties 'mod' not allowed"),
        (["webhook.port=abc"], "/webhook/port"),
        (["crds.install=maybe"], "/crds/install"),
    ],
    ids=["typo", "nested-typo", "port-type", "bool-type"],
)
def test_lint_refuses_what_the_schema_refuses(helm: Path, values: list[str], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        lint_chart(helm, values)
