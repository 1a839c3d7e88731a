"""`python -m clawhost_localcluster {build,up,down,status,chat}`: the local platform for people (make up / make down /
make chat)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from clawhost_localcluster.agent_chat import (
    EXIT_NO_REAL_GATEWAY,
    EXIT_NOT_RUNNING,
    EXIT_TURN_FAILED,
    AgentChat,
    ChatError,
)
from clawhost_localcluster.browser import BrowserSetupError, axe_core, launch_args
from clawhost_localcluster.build import BuildError, ensure_binaries, ensure_kstatus, ensure_node_binaries
from clawhost_localcluster.control_api_launch import LOCAL_WEBHOOK_SECRET, local_site_settings, start_control_api
from clawhost_localcluster.environment import Cluster, Environment, local_environment
from clawhost_localcluster.fake_kimi import UPSTREAM_KEY, FakeKimi
from clawhost_localcluster.images import IMAGE_ERRORS, ensure_gateway_image
from clawhost_localcluster.in_cluster_proxy import (
    PROXY_URL_IN_CLUSTER,
    OutsideServices,
    ProxyUpstream,
    start_token_proxy_in_cluster,
    upstream_from_environment,
)
from clawhost_localcluster.node import NodeLockTimeoutError, acquire_node_lock, clean_after_killed_node
from clawhost_localcluster.node_environment import RealNodeCluster
from clawhost_localcluster.onboarding_process import OnboardingProcess
from clawhost_localcluster.onboarding_stand_in import answer as onboarding_stand_in_answer
from clawhost_localcluster.pause_image import pause_image
from clawhost_localcluster.pki import write_jwt_keys
from clawhost_localcluster.processes import ManagedProcess, StartupError, free_port, wait_until
from clawhost_localcluster.public_telegram import remove_netns, start_public_telegram
from clawhost_localcluster.stripe_mock import start_stripe_mock
from clawhost_localcluster.supervisor import Supervisor

REPO = Path(__file__).resolve().parents[2]
RUN_DIR = Path(os.environ.get("CLAWHOST_RUN_DIR", str(REPO / ".run")))
STATE_FILE = RUN_DIR / "state.json"
PID_FILE = RUN_DIR / "supervisor.pid"
LOG_FILE = RUN_DIR / "supervisor.log"
NODE_CHOICE_ENV = "CLAWHOST_LOCAL_NODE"  # real (default): a real node runs the pods; kwok: fake nodes only
TELEGRAM_CHOICE_ENV = "CLAWHOST_LOCAL_TELEGRAM"  # stand-in (default): the gateways' Bot API is local; real: Telegram


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running_pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def _install_platform(env: Environment) -> None:
    """Install the CRDs, the platform's namespaces and NetworkPolicies, and each service's RBAC and admission policies
    (their Deployments need images; locally the services run here)."""
    for crd in sorted((REPO / "crds").glob("*.crd.yaml")):
        applied = env.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd), "-o", "name")
        print(f"[up] applied {crd.relative_to(REPO)}", flush=True)
        env.cluster.wait_established(*(line.split("/", 1)[1] for line in applied.stdout.split()))
    manifests = [
        *sorted((REPO / "deploy").glob("*.yaml")),
        *sorted((REPO / "operator" / "deploy").glob("*.yaml")),
        *sorted((REPO / "control_api" / "deploy").glob("*.yaml")),
        *sorted((REPO / "proxy" / "deploy").glob("rbac*.yaml")),
        *sorted((REPO / "onboarding" / "deploy").glob("*.yaml")),
    ]
    for manifest in manifests:
        if "deployment" not in manifest.name:
            env.cluster.kubectl("apply", "-f", str(manifest))
            print(f"[up] applied {manifest.relative_to(REPO)}", flush=True)
    if env.node is not None:
        # The stores run here on loopback and are relayed to `platform` (in_cluster_proxy): their StatefulSets' pods
        # would wait for images nothing can pull and volumes nothing provides.
        env.cluster.kubectl("delete", "statefulsets,cronjobs,jobs", "--all", "-n", "platform", "--wait=false")


def _service_account_kubeconfig(env: Environment, namespace: str, account: str) -> Path:
    """A kubeconfig authenticating as a ServiceAccount with a real token, so local runs prove the RBAC too."""
    return env.cluster.service_account_kubeconfig(
        namespace, account, env.workdir / f"{account}.kubeconfig", duration="24h"
    )


def _wait_http(name: str, url: str, process: ManagedProcess, timeout: float = 60) -> None:
    def answers() -> bool:
        return httpx.get(url, timeout=2).status_code == 200

    wait_until(name, answers, timeout, process)


def _start_control_api(
    env: Environment, stripe_url: str, onboarding: OnboardingProcess
) -> tuple[ManagedProcess, str, str]:
    api = start_control_api(
        workdir=env.workdir,
        database_url=env.postgres.dsn,
        redis_url=env.redis.url,
        jwt_keys=write_jwt_keys(env.workdir),
        kubeconfig=_service_account_kubeconfig(env, "platform", "clawhost-control-api"),
        stripe_url=stripe_url,
        extra_env=local_site_settings(onboarding, env.workdir),
    )
    print("[up] control API running", flush=True)
    return api.process, api.url, f"{api.url}  (OpenAPI: /docs; log {env.workdir / 'control-api.log'})"


def _start_services(env: Environment, outside: ExitStack) -> tuple[list[ManagedProcess], dict[str, str]]:
    """The platform's services: host processes (supervised here) but, on the real node, the token proxy, which runs
    in the cluster from proxy/deploy/ (Kubernetes restarts it). What outlives the call is closed by `outside`."""
    operator_settings: dict[str, str] = {}
    proxy: ManagedProcess | None = None
    if env.node is not None:
        proxy_description = _start_proxy_in_cluster(env, outside)
        telegram_description, operator_settings = _start_telegram_for_gateways(env, outside)
    else:
        telegram_description = "none: kwok nodes run no gateway"
    metrics, health = free_port(), free_port()
    operator = ManagedProcess(
        "operator",
        [sys.executable, "-m", "clawhost_operator"],
        env.workdir / "operator.log",
        env=dict(
            os.environ,
            KUBECONFIG=str(_service_account_kubeconfig(env, "platform", "clawhost-operator")),
            CLAWHOST_OPERATOR_METRICS_PORT=str(metrics),
            CLAWHOST_OPERATOR_HEALTH_PORT=str(health),
            **operator_settings,
        ),
    )
    operator.start()
    _wait_http("the operator's liveness endpoint", f"http://127.0.0.1:{health}/healthz", operator)
    print("[up] operator running", flush=True)
    print("[up] ensuring stripe-mock (Stripe's API double; built once from its Go module)", flush=True)
    stripe = start_stripe_mock(env.workdir)
    onboarding, onboarding_description = _start_onboarding(env)
    api, site_url, api_description = _start_control_api(env, stripe.url, onboarding)
    if env.node is None:
        proxy, proxy_description = _start_proxy(env)
    assert onboarding.process is not None
    host_processes = [operator, stripe.process, onboarding.process, api, *([proxy] if proxy is not None else [])]
    return host_processes, {
        "onboarding": onboarding_description,
        "site": f"{site_url}/  (open it in a browser: the landing page, sign-up, the onboarding chat)",
        "proxy": proxy_description,
        "telegram": telegram_description,
        "operator": f"metrics http://127.0.0.1:{metrics}/metrics, health http://127.0.0.1:{health}/healthz, "
        f"log {env.workdir / 'operator.log'}",
        "stripe": f"{stripe.url} (stripe-mock; webhook secret {LOCAL_WEBHOOK_SECRET})",
        "control_api": api_description,
    }


def _start_proxy_in_cluster(env: Environment, outside: ExitStack) -> str:
    """The token proxy as production runs it (see `in_cluster_proxy`), Ready before this returns; the local
    stand-in it may use is also the onboarding service's."""
    assert env.node is not None

    def report(line: str) -> None:
        print(f"[up] {line}", flush=True)

    chosen: list[ProxyUpstream] = []

    def upstream(services: OutsideServices) -> ProxyUpstream:
        chosen.append(upstream_from_environment(os.environ, services.upstream_url))
        return chosen[0]

    services = start_token_proxy_in_cluster(
        RealNodeCluster(env.cluster, env.node),
        env.redis.port,
        env.postgres.port,
        env.postgres.database,
        report,
        upstream,
        FakeKimi(responder=onboarding_stand_in_answer),
    )
    outside.callback(services.stop)
    _local_upstream.append(services.kimi)
    return (
        f"in the cluster: Deployment platform/token-proxy from proxy/deploy/ (the platform image), "
        f"{PROXY_URL_IN_CLUSTER} from pods; upstream: {chosen[0].description}; "
        f"log: kubectl logs -n platform deploy/token-proxy; Redis and PostgreSQL relayed to it on "
        f"{services.redis.address} and {services.postgres.address}"
    )


def _start_telegram_for_gateways(env: Environment, outside: ExitStack) -> tuple[str, dict[str, str]]:
    """Where the real gateways' Telegram channel connects: the local Bot API stand-in on https://203.0.113.10, where
    any well-formed bot token is a bot (so a Customer is Ready offline, its channel connected); Telegram's own with
    CLAWHOST_LOCAL_TELEGRAM=real."""
    choice = os.environ.get(TELEGRAM_CHOICE_ENV, "stand-in")
    if choice == "real":
        return "https://api.telegram.org (CLAWHOST_LOCAL_TELEGRAM=real)", {}
    if choice != "stand-in":
        raise StartupError(f"{TELEGRAM_CHOICE_ENV}={choice!r}: use stand-in (the default) or real")
    telegram = start_public_telegram(env.workdir / "telegram", any_token_is_a_bot=True)
    outside.callback(telegram.stop)
    print(f"[up] Telegram Bot API stand-in on {telegram.api_root} (the gateways' Telegram)", flush=True)
    settings = {
        "CLAWHOST_OPERATOR_TELEGRAM_API_ROOT": telegram.api_root,
        "CLAWHOST_OPERATOR_GATEWAY_EXTRA_CA_FILE": str(telegram.ca_file),
    }
    return (
        f"the gateways use a local Bot API stand-in on {telegram.api_root} (any well-formed bot token works; "
        f"{TELEGRAM_CHOICE_ENV}=real for Telegram's own); talk to an agent with `make chat CUSTOMER=<name>`",
        settings,
    )


_local_upstream: list[FakeKimi] = []


def _local_stand_in() -> FakeKimi:
    """The one local OpenAI-compatible stand-in of `make up` (the proxy's and the onboarding service's upstream): it
    plays a simple deterministic model for the onboarding agent's requests (onboarding_stand_in.py), so the local
    chat reaches the checkout without a Kimi key, and answers any other request with canned words."""
    if not _local_upstream:
        stand_in = FakeKimi(responder=onboarding_stand_in_answer)
        stand_in.start()
        _local_upstream.append(stand_in)
    return _local_upstream[0]


def _start_onboarding(env: Environment) -> tuple[OnboardingProcess, str]:
    """The onboarding service; Kimi when a key is given (CLAWHOST_ONBOARDING_LLM_API_KEY or _FILE), else the local
    stand-in. Telegram's real Bot API unless CLAWHOST_ONBOARDING_TELEGRAM_API_BASE_URL says otherwise."""
    given = {k: v for k, v in os.environ.items() if k.startswith("CLAWHOST_ONBOARDING_")}
    if "CLAWHOST_ONBOARDING_LLM_API_KEY" in given or "CLAWHOST_ONBOARDING_LLM_API_KEY_FILE" in given:
        base_url = given.get("CLAWHOST_ONBOARDING_LLM_BASE_URL", "https://api.moonshot.ai/v1")
        key, model = given.get("CLAWHOST_ONBOARDING_LLM_API_KEY", ""), base_url
    else:
        stand_in = _local_stand_in()
        base_url, key = f"http://{stand_in.host}:{stand_in.port}/v1", UPSTREAM_KEY
        model = (
            "a local stand-in, not a language model: a deterministic keyword-driven script of the onboarding steps "
            "(English; answer its questions plainly: the use case, a bot token, 'done' after Start, 'yes', "
            "'daily, only me', 'Pro'); set CLAWHOST_ONBOARDING_LLM_API_KEY to use Kimi"
        )
    telegram = given.pop("CLAWHOST_ONBOARDING_TELEGRAM_API_BASE_URL", "https://api.telegram.org")
    service = OnboardingProcess(
        redis_url=env.redis.url,
        llm_base_url=base_url,
        telegram_api_root=telegram,
        workdir=env.workdir,
        extra=given,
        llm_api_key=key,
    )
    service.start()
    print("[up] onboarding service running", flush=True)
    return service, (
        f"{service.ws_url}  (internal: the control API relays /ws/onboarding to it; model: {model}; "
        f"Bot API: {telegram}; log {service.log_path})"
    )


def _start_proxy(env: Environment) -> tuple[ManagedProcess, str]:
    """The token proxy as a process on this machine, as its ServiceAccount (kwok nodes: no pod could reach it anyway);
    upstream Kimi when a key is given, else a local stand-in."""
    upstream_env = {k: v for k, v in os.environ.items() if k.startswith("CLAWHOST_PROXY_UPSTREAM_")}
    if "CLAWHOST_PROXY_UPSTREAM_API_KEY" in upstream_env or "CLAWHOST_PROXY_UPSTREAM_API_KEY_FILE" in upstream_env:
        upstream = upstream_env.get("CLAWHOST_PROXY_UPSTREAM_BASE_URL", "https://api.moonshot.ai/v1 (default)")
    else:
        stand_in = _local_stand_in()
        upstream_env = {
            "CLAWHOST_PROXY_UPSTREAM_BASE_URL": f"http://127.0.0.1:{stand_in.port}/v1",
            "CLAWHOST_PROXY_UPSTREAM_API_KEY": UPSTREAM_KEY,
        }
        upstream = "a local OpenAI-compatible stand-in (set CLAWHOST_PROXY_UPSTREAM_API_KEY to use Kimi)"
    port, admin_port = free_port(), free_port()
    proxy = ManagedProcess(
        "token-proxy",
        [sys.executable, "-m", "clawhost_proxy"],
        env.workdir / "token-proxy.log",
        env={
            **os.environ,
            **upstream_env,
            "CLAWHOST_PROXY_HOST": "127.0.0.1",
            "CLAWHOST_PROXY_PORT": str(port),
            "CLAWHOST_PROXY_ADMIN_PORT": str(admin_port),
            "CLAWHOST_PROXY_REDIS_URL": env.redis.url,
            "CLAWHOST_PROXY_POSTGRES_DSN": env.postgres.dsn,
            "CLAWHOST_PROXY_KUBECONFIG": str(_service_account_kubeconfig(env, "platform", "token-proxy")),
        },
    )
    proxy.start()
    _wait_http("the token proxy", f"http://127.0.0.1:{admin_port}/readyz", proxy)
    print("[up] token proxy running", flush=True)
    return proxy, (
        f"http://127.0.0.1:{port}/v1  (a process on this machine: kwok nodes run no pods; upstream: {upstream}; "
        f"log {env.workdir / 'token-proxy.log'})"
    )


def _describe(state: dict[str, str]) -> str:
    return "\n".join(
        [
            "clawhost local platform is up:",
            f"  site         {state.get('site', 'not started')}",
            f"  kubeconfig   export KUBECONFIG={state['kubeconfig']}",
            f"  kubectl      {state['kubectl']}",
            f"  node         {state.get('node', 'not started')}",
            f"  operator     {state.get('operator', 'not started')}",
            f"  control API  {state.get('control_api', 'not started')}",
            f"  token proxy  {state.get('proxy', 'not started')}",
            f"  telegram     {state.get('telegram', 'not started')}",
            f"  onboarding   {state.get('onboarding', 'not started')}",
            f"  stripe       {state.get('stripe', 'not started')}",
            f"  redis        {state['redis_url']}",
            f"  postgres     {state['postgres_dsn']}",
            f"  logs         {state['workdir']}/cluster/logs  (supervisor: {LOG_FILE})",
            "  try          kubectl get nodes; kubectl apply -f crds/examples/customer.yaml; kubectl get cust -w",
            "  chat         make chat CUSTOMER=alice  (once it is Ready: your agent answers, through the token proxy)",
            "  stop         make down",
        ]
    )


def _infrastructure(env: Environment) -> list[ManagedProcess]:
    """The cluster's own processes (control plane, kwok, the real node's), supervised like the services."""
    processes = list(env.cluster.control_plane.processes) if env.cluster.control_plane is not None else []
    return processes + (list(env.node.processes) if env.node is not None else [])


def _real_node_wanted() -> bool:
    choice = os.environ.get(NODE_CHOICE_ENV, "real")
    if choice not in ("real", "kwok"):
        raise StartupError(f"{NODE_CHOICE_ENV}={choice!r}: use real (the default) or kwok")
    if choice == "real" and os.geteuid() != 0:
        raise StartupError(f"the real node needs root (containerd, iptables, mounts); or use {NODE_CHOICE_ENV}=kwok")
    return choice == "real"


def _import_images(env: Environment) -> str:
    """The images the platform's pods run, written (cached) and imported into the real node's containerd."""
    if env.node is None:
        return "kwok nodes (CLAWHOST_LOCAL_NODE=kwok): pods are simulated, no image runs"
    print("[up] ensuring the gateway image (first run assembles Node 24 + OpenClaw; cached after)", flush=True)
    try:
        gateway = ensure_gateway_image()
        env.node.import_image(gateway)
    except IMAGE_ERRORS as error:
        raise StartupError(f"the gateway image could not be assembled or imported: {error}") from error
    print(f"[up] imported {gateway.reference} into the real node", flush=True)
    return f"real ({env.node.name}, {env.node.ip}); images: {gateway.reference}"


def _serve() -> int:
    """Supervisor body: start everything, write the state file, then keep the services running until SIGTERM/SIGINT."""
    workdir = RUN_DIR / "data"
    with local_environment(workdir=workdir, real_node=_real_node_wanted()) as env, ExitStack() as outside:
        node_description = _import_images(env)
        _install_platform(env)
        services, described = _start_services(env, outside)
        state = {
            **described,
            "node": node_description,
            "kubeconfig": str(env.cluster.kubeconfig),
            "kubectl": str(env.cluster.kubectl_path),
            "redis_url": env.redis.url,
            "postgres_dsn": env.postgres.dsn,
            "workdir": str(env.workdir),
        }
        STATE_FILE.write_text(json.dumps(state, indent=2))
        print(_describe(state), flush=True)
        supervised = [*services, *_infrastructure(env)]
        supervisor = Supervisor(supervised)
        in_cluster = "; the token proxy runs in the cluster (Kubernetes restarts it)" if env.node is not None else ""
        names = ", ".join(p.name for p in supervised)
        print(f"[up] supervising {names}: one that exits is restarted{in_cluster}", flush=True)
        try:
            while True:
                supervisor.poll()
                time.sleep(1)  # supervision poll, not synchronisation
        except KeyboardInterrupt:
            print("[up] stopping", flush=True)
        finally:
            STATE_FILE.unlink(missing_ok=True)
            for service in services:
                service.stop()
    return 0


class _ProgressLines:
    """The supervisor's `[up]` lines (and a wait for the machine's real node) written since this was made, shown as
    they come (the starting is in the background; its progress belongs on the terminal that waits for it)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.offset = log.stat().st_size if log.exists() else 0

    def show_new(self) -> None:
        if not self.log.exists():
            return
        with self.log.open("rb") as file:
            file.seek(self.offset)
            chunk = file.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            if line.startswith("[up]") or "waiting for the real node" in line:
                print(line, flush=True)


def _remove_left_telegram_netns() -> None:
    """The gateways' Bot API stand-in's network namespace, when a killed run left it: only while no harness holds the
    real node (a running one, e.g. the real-gateway tests, is using it)."""
    if os.geteuid() != 0:
        return  # it takes root to make one
    try:
        lock = acquire_node_lock(Path("(cleanup)"), wait=0)
    except NodeLockTimeoutError:
        return
    try:
        remove_netns()
    finally:
        lock.close()


def _up(timeout: float) -> int:
    RUN_DIR.mkdir(exist_ok=True)
    progress = _ProgressLines(LOG_FILE)
    pid = _running_pid()
    if pid is not None and STATE_FILE.exists():
        print(f"already running (pid {pid})")
        print(_describe(json.loads(STATE_FILE.read_text())))
        return 0
    child: subprocess.Popen[bytes] | None = None
    if pid is not None:
        print(f"a previous start (pid {pid}) is still coming up; waiting for it")
    else:
        # Stale data of a crashed run would hold an old etcd; start clean (a killed real node's mounts first).
        clean_after_killed_node()
        _remove_left_telegram_netns()
        subprocess.run(["rm", "-rf", str(RUN_DIR / "data")], check=True)
        STATE_FILE.unlink(missing_ok=True)
        ensure_binaries()  # builds in the foreground so the progress shows here
        if _real_node_wanted():
            ensure_node_binaries()
            pause_image()
        with LOG_FILE.open("ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "clawhost_localcluster", "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=REPO,
            )
        PID_FILE.write_text(str(child.pid))
        pid = child.pid
        print(f"starting the local platform (pid {pid}, log {LOG_FILE})", flush=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress.show_new()
        if STATE_FILE.exists():
            print(_describe(json.loads(STATE_FILE.read_text())))
            return 0
        exited = child.poll() is not None if child is not None else not _alive(pid)
        if exited:
            print(f"the platform failed to start; end of {LOG_FILE}:\n" + LOG_FILE.read_text()[-3000:], file=sys.stderr)
            return 1
        time.sleep(0.5)
    print(f"timed out after {timeout:.0f}s; see {LOG_FILE}", file=sys.stderr)
    return 1


def _down() -> int:
    pid = _running_pid()
    if pid is None:
        print("not running")
        PID_FILE.unlink(missing_ok=True)
        if clean_after_killed_node():
            print("removed what a killed real node left on this machine")
        _remove_left_telegram_netns()
        STATE_FILE.unlink(missing_ok=True)
        if (RUN_DIR / "data").exists():  # a killed run's: its processes are gone, its files are not
            subprocess.run(["rm", "-rf", str(RUN_DIR / "data")], check=True)
            print("removed the data a killed run left")
        return 0
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
    PID_FILE.unlink(missing_ok=True)
    clean_after_killed_node()  # when the supervisor had to be killed, its node could not clean up
    _remove_left_telegram_netns()
    subprocess.run(["rm", "-rf", str(RUN_DIR / "data")], check=True)
    STATE_FILE.unlink(missing_ok=True)
    print("stopped; data removed")
    return 0


def _running_cluster() -> tuple[Cluster, dict[str, str]]:
    """The cluster of the running local platform and its state, or a ChatError saying it is not running."""
    if _running_pid() is None or not STATE_FILE.exists():
        raise ChatError("the local platform is not running (start it with `make up`)", EXIT_NOT_RUNNING)
    state = json.loads(STATE_FILE.read_text())
    cluster = Cluster(Path(state["kubeconfig"]), Path(state["kubectl"]), existing=False, control_plane=None)
    return cluster, state


def _chat(customer: str, message: str | None) -> int:
    """One message when given (the answer on stdout), else a prompt until end of input."""
    try:
        cluster, state = _running_cluster()
        if state.get("node", "").startswith("kwok"):
            raise ChatError(
                "the platform runs on kwok nodes (CLAWHOST_LOCAL_NODE=kwok): no gateway really runs there; "
                "`make down`, then `make up` with the real node",
                EXIT_NO_REAL_GATEWAY,
            )
        chat = AgentChat(cluster, customer)
        if message is not None:
            print(chat.ask(message), flush=True)
            return 0
        chat.gateway_pod()
        print(f"talking to {customer}'s agent (its OpenClaw gateway, through the token proxy); Ctrl-D ends", flush=True)
    except ChatError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    while True:
        try:
            text = input("you> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not text.strip():
            continue
        print("(thinking...)", file=sys.stderr, flush=True)
        try:
            print(f"{customer}> {chat.ask(text)}", flush=True)
        except ChatError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            if error.exit_code != EXIT_TURN_FAILED:
                return error.exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clawhost_localcluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build and cache the Kubernetes, etcd, kwok, kstatus and real-node binaries")
    up = sub.add_parser("up", help="start the local platform in the background and print how to reach it")
    up.add_argument("--timeout", type=float, default=900, help="seconds (a first real-node start imports images)")
    sub.add_parser("down", help="stop the local platform and delete its data")
    sub.add_parser("status", help="print how to reach the running platform")
    sub.add_parser("browser", help="check Chromium and fetch axe-core (pinned, cached) for the browser tests")
    chat = sub.add_parser("chat", help="talk to a Customer's own agent (its real gateway) without Telegram")
    chat.add_argument("customer", help="the Customer's name (kubectl get customers)")
    chat.add_argument("message", nargs="?", help="one message to send (else an interactive prompt)")
    sub.add_parser("serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            for field, value in vars(ensure_binaries()).items():
                print(f"{field}: {value}")
            print(f"kstatus: {ensure_kstatus()}")  # for the tests: Flux's reading of a Customer
            for field, value in vars(ensure_node_binaries()).items():  # the real node's
                print(f"{field}: {value}")
            print(f"pause image: {pause_image().path}")
            return 0
        if args.command == "browser":
            print(f"chromium: {launch_args()['executable_path']}")
            print(f"axe-core: {axe_core()}")
            return 0
        if args.command == "up":
            return _up(args.timeout)
        if args.command == "down":
            return _down()
        if args.command == "serve":
            return _serve()
        if args.command == "chat":
            return _chat(args.customer, args.message)
        if STATE_FILE.exists() and _running_pid() is not None:
            print(_describe(json.loads(STATE_FILE.read_text())))
            return 0
        print("not running (start it with `make up`)")
        return 3
    except (BuildError, StartupError, BrowserSetupError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
