"""GitOps tier (`make test-gitops`, not part of `make test`): the integration tier's control
plane, namespace and in-process operator, plus Flux's controllers as processes."""

from integration.conftest import (  # noqa: F401 (fixtures, found by pytest by name)
    cluster,
    crds,
    kube,
    namespace,
    running_operator,
)
