"""Token proxy benchmark: upstream direct (the floor), clawhost's proxy and the LiteLLM proxy, side by side.

    uv run --frozen python tests/bench/bench_proxy.py [--duration 10] [--concurrency 200]

Same machine, same local upstream (an aiohttp server with a fixed latency, one process), same
load generator (a raw HTTP/1.1 client on uvloop, in its own process), one worker process per
proxy. Our proxy runs exactly as deployed (real Redis for limits, the ledger flushed to a real
PostgreSQL, one log line per request); it only gets its customer directory from a fixed list
instead of a Kubernetes watch. LiteLLM (`litellm[proxy]` from PyPI) is installed into its own
cached virtualenv (~/.cache/clawhost/litellm-<version>), never into the project's lock, and runs
its simplest keyed configuration (a master key, no database: its virtual keys and spend tracking
need PostgreSQL plus Prisma's generated client, which this benchmark does not set up).

Phases, each target alone in turn:
  1. saturation: closed loop, `concurrency` connections, non-streaming -> requests per second;
  2. latency at fixed offered rates (`--rates`, default 200 and 500 req/s) over `concurrency`
     connections -> p50/p99, and added latency = target - upstream direct at the same rate
     (a closed loop at 200 connections would only measure queueing: latency = 200 / RPS);
  3. streaming at the last fixed rate -> time to first byte (first SSE data chunk) p50/p99.
The measuring part holds `flock /tmp/clawhost-bench.lock` so benchmarks never overlap.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LITELLM_VERSION = "1.106.2"
CACHE = Path(os.environ.get("CLAWHOST_CACHE", Path.home() / ".cache" / "clawhost"))
LOCK = Path("/tmp/clawhost-bench.lock")
UPSTREAM_KEY = "sk-bench-upstream"
PROXY_TOKEN = "chp_bench-token"
LITELLM_KEY = "sk-bench-master"
MODEL = "kimi-k2.5"  # a model the bench customer's tier offers (the proxy refuses others)
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello in five words."}], "max_tokens": 64}
WORDS = [" Hello", " there", ",", " how", " are", " you", " today", "?"]


# --------------------------------------------------------------------------------------------
# The upstream: OpenAI-compatible, fixed latency, usage in the response / final chunk.


def serve_upstream(port: int, latency_ms: float) -> None:
    import orjson
    import uvloop
    from aiohttp import web

    delay = latency_ms / 1000
    completion = orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1,
            "model": MODEL,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "".join(WORDS)}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": len(WORDS), "total_tokens": 12 + len(WORDS)},
        }
    )
    chunks = [
        b"data: "
        + orjson.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": MODEL,
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
            }
        )
        + b"\n\n"
        for word in WORDS
    ]
    usage_chunk = (
        b"data: "
        + orjson.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": MODEL,
                "choices": [],
                "usage": {"prompt_tokens": 12, "completion_tokens": len(WORDS), "total_tokens": 12 + len(WORDS)},
            }
        )
        + b"\n\n"
    )

    async def chat(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        if not body.get("stream"):
            await asyncio.sleep(delay)
            return web.Response(body=completion, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await asyncio.sleep(delay)
        for chunk in chunks:
            await response.write(chunk)
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(usage_chunk)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/v1/models", models)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
        await asyncio.Event().wait()

    uvloop.run(main())


# --------------------------------------------------------------------------------------------
# Our proxy, as deployed, with a fixed customer directory instead of the Kubernetes watch.


def serve_proxy(port: int, admin_port: int, upstream: str, redis_url: str, postgres_dsn: str) -> None:
    import uvloop

    from clawhost_api.customer import hash_proxy_token
    from clawhost_proxy.__main__ import serve
    from clawhost_proxy.directory import TokenDirectory
    from clawhost_proxy.settings import ProxySettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = ProxySettings(
        host="127.0.0.1",
        port=port,
        admin_port=admin_port,
        upstream_base_url=upstream,
        upstream_api_key=UPSTREAM_KEY,  # type: ignore[arg-type]
        redis_url=redis_url,
        postgres_dsn=postgres_dsn,  # type: ignore[arg-type]
        requests_per_second=1e9,  # one synthetic customer carries the whole load
        ledger_consumer="bench",
    )
    directory = TokenDirectory()
    token_hash = hash_proxy_token(PROXY_TOKEN)
    directory.replace_all(
        [
            {
                "metadata": {"name": "bench"},
                "spec": {"tier": "team"},
                "status": {"phase": "Running", "applied": {"tier": "team"}, "proxyToken": {"hash": token_hash}},
            }
        ]
    )
    profile = os.environ.get("CLAWHOST_BENCH_PROFILE")
    if profile:  # a cProfile dump of the proxy process, written when it is stopped
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            uvloop.run(serve(settings, directory))
        finally:
            profiler.disable()
            profiler.dump_stats(profile)
    else:
        uvloop.run(serve(settings, directory))


# --------------------------------------------------------------------------------------------
# The load generator: raw HTTP/1.1 keep-alive connections on uvloop (cheap per request).


def _request_bytes(host: str, path: str, token: str, stream: bool) -> bytes:
    body = json.dumps({**BODY, "stream": stream}).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, float]:
    """Send one request; return (status, seconds to the first body data) after reading the whole response."""
    started = time.perf_counter()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    first = 0.0
    if b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readline()
                break
            data = await reader.readexactly(size + 2)
            if not first and b"data:" in data:
                first = time.perf_counter() - started
    else:
        marker = lower.index(b"content-length:") + 15
        length = int(lower[marker : lower.index(b"\r\n", marker)])
        await reader.readexactly(length)
    total = time.perf_counter() - started
    return status, first or total


async def _load(
    url: str, token: str, concurrency: int, duration: float, warmup: float, rate: float, stream: bool
) -> dict[str, Any]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = _request_bytes(f"{host}:{port}", parts.path + "/chat/completions", token, stream)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    completed = 0  # including warm-up: the servers' CPU time is read around the whole run
    loop = asyncio.get_running_loop()
    begin = loop.time() + 0.5
    measure_from, measure_to = begin + warmup, begin + warmup + duration
    interval = concurrency / rate if rate else 0.0

    async def connection(index: int) -> None:
        nonlocal errors, completed
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        due = begin + (interval * index / concurrency if interval else 0.0)
        while True:
            now = loop.time()
            if now >= measure_to:
                break
            if interval:
                if due > now:
                    await asyncio.sleep(due - now)
                due += interval
            sent = loop.time()
            try:
                status, seconds = await _exchange(reader, writer, request)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
                continue
            completed += 1
            if measure_from <= sent < measure_to:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(seconds)
        writer.close()

    await asyncio.gather(*[connection(i) for i in range(concurrency)])
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "ok": len(latencies),
        "completed": completed,
        "rps": len(latencies) / duration,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "statuses": statuses,
        "errors": errors,
    }


def run_load(args: argparse.Namespace) -> None:
    import uvloop

    result = uvloop.run(
        _load(args.url, args.token, args.concurrency, args.duration, args.warmup, args.rate, args.stream)
    )
    print(json.dumps(result))


# --------------------------------------------------------------------------------------------
# Orchestration.


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    token: str

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in [self.process.pid, *_children(self.process.pid)]:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    found += [int(child), *_children(int(child))]
    return found


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, what: str, process: subprocess.Popen[bytes], timeout: float = 120, **headers: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{what} did not answer {url} within {timeout}s")


def _spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def ensure_litellm() -> Path:
    """LiteLLM's own virtualenv, cached by version (uv venv + uv pip install; never the project lock)."""
    venv = CACHE / f"litellm-{LITELLM_VERSION}"
    python = venv / "bin" / "python"
    if not python.exists():
        uv = shutil.which("uv")
        if uv is None:
            raise RuntimeError("uv is needed to install LiteLLM into its own virtualenv")
        print(f"==> installing litellm[proxy]=={LITELLM_VERSION} into {venv} (first run only)", flush=True)
        subprocess.run([uv, "venv", "-q", "-p", "3.11", str(venv)], check=True)
        subprocess.run(
            [uv, "pip", "install", "-q", "--python", str(python), f"litellm[proxy]=={LITELLM_VERSION}"], check=True
        )
    return python


@contextlib.contextmanager
def servers(workdir: Path, latency_ms: float, with_litellm: bool) -> Iterator[tuple[list[Server], str]]:
    from clawhost_localcluster.services import PostgresServer, RedisServer

    redis_server = RedisServer(workdir / "redis")
    postgres = PostgresServer(workdir / "postgres")
    started: list[subprocess.Popen[bytes]] = []
    redis_server.start()
    postgres.start()
    try:
        me = [sys.executable, str(Path(__file__).resolve())]
        up_port, proxy_port, admin_port, litellm_port = _free_port(), _free_port(), _free_port(), _free_port()
        upstream = _spawn(
            [*me, "upstream", "--port", str(up_port), "--latency-ms", str(latency_ms)], workdir / "up.log"
        )
        started.append(upstream)
        upstream_url = f"http://127.0.0.1:{up_port}/v1"
        _wait_http(f"{upstream_url}/models", "the upstream", upstream)
        result = [Server("upstream direct", upstream_url, upstream, UPSTREAM_KEY)]

        proxy_argv = [
            *me,
            "proxy",
            "--port",
            str(proxy_port),
            "--admin-port",
            str(admin_port),
            "--upstream",
            upstream_url,
        ]
        proxy_argv += ["--redis", redis_server.url, "--postgres", postgres.dsn]
        proxy = _spawn(
            proxy_argv,
            workdir / "proxy.log",
        )
        started.append(proxy)
        _wait_http(f"http://127.0.0.1:{admin_port}/readyz", "clawhost proxy", proxy)
        result.append(Server("clawhost proxy", f"http://127.0.0.1:{proxy_port}/v1", proxy, PROXY_TOKEN))

        if with_litellm:
            python = ensure_litellm()
            config = workdir / "litellm.yaml"
            config.write_text(
                json.dumps(
                    {
                        "model_list": [
                            {
                                "model_name": MODEL,
                                "litellm_params": {
                                    "model": f"openai/{MODEL}",
                                    "api_base": upstream_url,
                                    "api_key": UPSTREAM_KEY,
                                },
                            }
                        ],
                        "general_settings": {"master_key": LITELLM_KEY},
                        "litellm_settings": {"telemetry": False, "set_verbose": False, "json_logs": False},
                    }
                )
            )
            env = {
                **os.environ,
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the model price list at start
                "LITELLM_LOG": "ERROR",
                "LITELLM_TELEMETRY": "False",
                "DISABLE_ADMIN_UI": "True",
            }
            env.pop("DATABASE_URL", None)
            litellm = _spawn(
                [str(python), "-c", "from litellm.proxy.proxy_cli import run_server; run_server()"]  # noqa: RUF005
                + ["--config", str(config), "--host", "127.0.0.1", "--port", str(litellm_port)]
                + ["--num_workers", "1", "--telemetry", "False"],
                workdir / "litellm.log",
                env,
            )
            started.append(litellm)
            _wait_http(
                f"http://127.0.0.1:{litellm_port}/v1/models",
                "LiteLLM",
                litellm,
                timeout=300,
                Authorization=f"Bearer {LITELLM_KEY}",
            )
            result.append(Server("LiteLLM proxy", f"http://127.0.0.1:{litellm_port}/v1", litellm, LITELLM_KEY))
        yield result, redis_server.url
    finally:
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        redis_server.stop()
        postgres.remove()


def load(server: Server, concurrency: int, duration: float, rate: float, stream: bool) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "load", "--url", server.url, "--token", server.token]
    argv += ["--concurrency", str(concurrency), "--duration", str(duration), "--rate", str(rate)]
    argv += ["--stream"] if stream else []
    before = server.cpu_seconds()
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["cpu_s"] = server.cpu_seconds() - before
    return result


def _reset_usage(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("clawhost:usage:*"):
        client.delete(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    up = sub.add_parser("upstream")
    up.add_argument("--port", type=int, required=True)
    up.add_argument("--latency-ms", type=float, default=5.0)
    px = sub.add_parser("proxy")
    px.add_argument("--port", type=int, required=True)
    px.add_argument("--admin-port", type=int, required=True)
    px.add_argument("--upstream", required=True)
    px.add_argument("--redis", required=True)
    px.add_argument("--postgres", required=True)
    ld = sub.add_parser("load")
    ld.add_argument("--url", required=True)
    ld.add_argument("--token", required=True)
    ld.add_argument("--concurrency", type=int, default=200)
    ld.add_argument("--duration", type=float, default=10)
    ld.add_argument("--warmup", type=float, default=2)
    ld.add_argument("--rate", type=float, default=0)
    ld.add_argument("--stream", action="store_true")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rates", default="200,500", help="offered req/s for the latency phases (last: streaming)")
    parser.add_argument("--latency-ms", type=float, default=5.0, help="the upstream's fixed latency")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds per target and mode first")
    parser.add_argument("--no-litellm", action="store_true")
    args = parser.parse_args()
    if args.command == "upstream":
        return serve_upstream(args.port, args.latency_ms)
    if args.command == "proxy":
        return serve_proxy(args.port, args.admin_port, args.upstream, args.redis, args.postgres)
    if args.command == "load":
        return run_load(args)

    rates = [float(r) for r in args.rates.split(",")]
    if not args.no_litellm:
        ensure_litellm()  # installs (first run) outside the lock: not part of any measurement
    LOCK.touch(exist_ok=True)
    with LOCK.open("r+") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"==> another benchmark holds {LOCK}; waiting for it", flush=True)
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        load_before = os.getloadavg()
        with (
            tempfile.TemporaryDirectory(prefix="clawhost-bench-") as tmp,
            servers(Path(tmp), args.latency_ms, not args.no_litellm) as (targets, redis_url),
        ):
            rows: dict[str, dict[str, dict[str, Any]]] = {}
            for target in targets:
                _reset_usage(redis_url)
                print(f"==> {target.name}: warm-up, saturation, fixed rates, streaming", flush=True)
                # Not measured: lazy imports, connection pools and caches (LiteLLM imports modules on
                # its first requests) settle before any phase counts.
                load(target, 20, args.warmup, 0, stream=False)
                load(target, 20, args.warmup, 0, stream=True)
                rows[target.name] = {"sat": load(target, args.concurrency, args.duration, 0, stream=False)}
                for rate in rates:
                    rows[target.name][f"fixed{rate:g}"] = load(
                        target, args.concurrency, args.duration, rate, stream=False
                    )
                rows[target.name]["stream"] = load(target, args.concurrency, args.duration, rates[-1], stream=True)
            load_after = os.getloadavg()
        _print_table(rows, args, rates, load_before, load_after)


def _print_table(
    rows: dict[str, dict[str, dict[str, Any]]],
    args: argparse.Namespace,
    rates: list[float],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    print()
    print(
        f"{args.concurrency} connections, upstream latency {args.latency_ms:g} ms, {args.duration:g} s per phase; "
        f"{os.cpu_count()} CPUs, load avg {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    header = f"{'target':<16} {'RPS (sat.)':>10} {'CPU ms/req':>10} {'TTFB p50':>9} {'TTFB p99':>9} {'errors':>7}"
    print(f"non-streaming saturation (closed loop); streaming time to first byte at {rates[-1]:g} req/s offered")
    print(header)
    print("-" * len(header))
    for name, phases in rows.items():
        sat, stream = phases["sat"], phases["stream"]
        cpu = sat["cpu_s"] * 1000 / sat["completed"] if sat["completed"] else float("nan")
        bad = sum(p["errors"] + sum(v for k, v in p["statuses"].items() if str(k) != "200") for p in phases.values())
        print(f"{name:<16} {sat['rps']:>10.0f} {cpu:>10.3f} {stream['p50_ms']:>9.2f} {stream['p99_ms']:>9.2f} {bad:>7}")
    print()
    print("non-streaming latency at a fixed offered rate; added = target - upstream direct")
    header = f"{'target':<16} {'req/s':>6} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>9} {'added p99':>9}"
    print(header)
    print("-" * len(header))
    for rate in rates:
        floor = rows["upstream direct"][f"fixed{rate:g}"]
        for name, phases in rows.items():
            fixed = phases[f"fixed{rate:g}"]
            added = name != "upstream direct"
            print(
                f"{name:<16} {rate:>6g} {fixed['p50_ms']:>8.2f} {fixed['p99_ms']:>8.2f} "
                f"{(fixed['p50_ms'] - floor['p50_ms']) if added else 0:>9.2f} "
                f"{(fixed['p99_ms'] - floor['p99_ms']) if added else 0:>9.2f}"
            )
    ours, theirs = rows["clawhost proxy"]["sat"]["rps"], rows.get("LiteLLM proxy", {}).get("sat", {}).get("rps")
    if theirs:
        print(f"throughput clawhost / LiteLLM: {ours / theirs:.1f}x (goal >= 5x)")
    print("goals: added latency <= 1 ms p50 and <= 5 ms p99 at 200 connections; RPS >= 5x LiteLLM")


if __name__ == "__main__":
    main()
