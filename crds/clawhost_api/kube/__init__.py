"""The one Kubernetes access layer of the operator, the control API and the token proxy.

`load_config` finds the API server and credentials (a kubeconfig or in-cluster), `KubeHttp` makes requests (one
kept-alive connection per thread), `Informer` keeps a LIST+WATCH cache current, and `KubeError` is the one error
every failure becomes: an API refusal, a timeout or an unreachable server alike.
"""

from clawhost_api.backoff import Backoff
from clawhost_api.kube.config import KubeConfig, load_config
from clawhost_api.kube.errors import KubeError
from clawhost_api.kube.http import KubeHttp, Response
from clawhost_api.kube.informer import Informer, Sink

__all__ = ["Backoff", "Informer", "KubeConfig", "KubeError", "KubeHttp", "Response", "Sink", "load_config"]
