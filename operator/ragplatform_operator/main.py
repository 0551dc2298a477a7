"""`ragplatform-operator`: runs the kopf operator with the project's standard settings.

Configuration is the `RAGPLATFORM_OPERATOR_*` environment (see `config.py`); there are no
command-line options, so the chart's Deployment and a developer's shell run the same thing.
The operator runs standalone (one replica; no peering objects needed), cluster-wide unless
`RAGPLATFORM_OPERATOR_NAMESPACES` lists namespaces, with kopf's liveness endpoint answering
at `RAGPLATFORM_OPERATOR_LIVENESS_ENDPOINT` (probe handlers included).
"""

from __future__ import annotations

import sys

import kopf
from pydantic import ValidationError

from ragplatform_operator.config import OperatorConfig
from ragplatform_operator.handlers import build_registry
from ragplatform_operator.kube_api import KubeApi
from ragplatform_operator.queue_depth import QueueDepthReader
from ragplatform_operator.reconcile import Reconciler

_LOG_FORMATS = {"json": kopf.LogFormat.JSON, "plain": kopf.LogFormat.PLAIN, "full": kopf.LogFormat.FULL}


def main() -> None:
    """Run the operator until SIGTERM/SIGINT; exit 2 with a message on bad configuration."""
    try:
        config = OperatorConfig()
    except ValidationError as exc:
        sys.exit(f"ragplatform-operator: invalid RAGPLATFORM_OPERATOR_* environment:\n{exc}")
    kopf.configure(verbose=config.verbose, log_format=_LOG_FORMATS[config.log_format], log_refkey="k8s")
    try:
        api = KubeApi.from_environment()
    except Exception as exc:  # lightkube's config loader raises several unrelated types
        sys.exit(
            f"ragplatform-operator: no Kubernetes credentials ({exc}). Run it in a pod with a service "
            "account, or with a kubeconfig (KUBECONFIG or ~/.kube/config)."
        )
    # The API client is closed by the cleanup handler, in the event loop that used it.
    kopf.run(
        registry=build_registry(config),
        standalone=True,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        liveness_endpoint=config.liveness_endpoint or None,
        memo=kopf.Memo(reconciler=Reconciler(api, QueueDepthReader())),
    )


if __name__ == "__main__":
    main()
