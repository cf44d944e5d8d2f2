"""The invoke gateway against nginx and against the backend directly, in one run.

Backend: nginx answering from memory (one worker, keep-alive): fast enough that the proxies in
front of it, not the backend, are what is measured. A deployment in the catalog routes to it
(a workload whose ready replica is that address; no container is needed to measure the
gateway). Targets, the same path through each:

  direct      the backend itself
  nginx-1/2   nginx as a reverse proxy, 1 or 2 worker processes (upstream keep-alive,
              HTTP/1.1, X-Forwarded-*, a buffered access log: what a production config has)
  gateway-1/2 `wapi gateway --processes 1` or `2`, with an invoke token: authenticated,
              counted, timed and audited (hash-chained, in batches) per call

Phases: (1) throughput, wrk with 16 connections, targets in rotating order over a few
rounds, the median per target; (2) latency at moderate load, 2 connections; (3) management
API latency (a deployment GET, the API process) idle and while wrk saturates the two-process
gateway; (4) 2,000 concurrent server-sent-event streams through one gateway process: memory
per stream and the latency each event gets, against the same streams straight to the
backend and through nginx. The machine's load average is printed at the start and the end:
the machine is shared, so compare ratios from one run.

Why one module of this length: the targets, their set-up, the four phases and the report
are one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _stack import ROOT, process_cpu_seconds, running_stack, serving_process

from models.deployments import DeploymentCreate
from services import deployment_access, deployments
from tests.factories import ADMIN, ready_replica, registered_workload
from tests.support.postgres import free_port

THROUGHPUT = ("direct", "nginx-1", "nginx-2", "gateway-1", "gateway-2")
MODERATE = ("direct", "nginx-1", "gateway-1")
WARMUP_SECONDS = 2
# wrk's `done` hook prints the exact numbers (microseconds) as one JSON line.
REPORT_LUA = """done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "micros": %d, "status": %d, "socket": %d, "p50": %d, "p99": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""
NGINX_COMMON = """pid {dir}/nginx.pid;
events {{ worker_connections 8192; }}
http {{
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
"""
BACKEND_CONF = (
    "worker_processes 1;\n"
    + NGINX_COMMON
    + """    access_log off;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        default_type text/plain;
        location / {{ return 200 "hello from the backend\\n"; }}
    }}
}}
"""
)
PROXY_CONF = (
    "worker_processes {workers};\n"
    + NGINX_COMMON
    + """    access_log {dir}/access.log combined buffer=64k flush=1s;
    upstream backend {{ server {backend}; keepalive 128; }}
    upstream sse {{ server {sse}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location /sse/ {{
            proxy_pass http://sse;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 3600s;
        }}
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Real-IP $remote_addr;
        }}
    }}
}}
"""
)
NGINX_CHOICES = (
    "nginx proxy: upstream keep-alive (128), HTTP/1.1 upstream, X-Forwarded-For/-Proto/-Host"
    " and X-Real-IP set, combined access log buffered 64k; SSE location unbuffered"
)


@dataclass
class Run:
    requests: int
    seconds: float
    bad_status: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    cpu: float  # CPU seconds of the proxy's processes meanwhile

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


@dataclass
class Target:
    name: str
    url: str
    pids: list[int]
    auth: str = ""


def tool(name: str) -> str:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin") or ""


def ensure_tools() -> None:
    if not (tool("nginx") and tool("wrk")):
        print("nginx or wrk missing: running scripts/ensure-system-packages.sh bench")
        subprocess.run([str(ROOT / "scripts/ensure-system-packages.sh"), "bench"], check=False)
    missing = [name for name in ("nginx", "wrk") if not tool(name)]
    if missing:
        raise SystemExit(f"bench/gateway.py needs {' and '.join(missing)} (Debian packages)")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def family(pid: int) -> list[int]:
    """`pid` and its descendants (nginx workers, gateway processes)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += family(int(child))
    return found


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with suppress(FileNotFoundError):
            total += process_cpu_seconds(pid)
    return total


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


@contextmanager
def nginx(directory: Path, conf: str, port: int, what: str) -> Iterator[list[int]]:
    """nginx with `conf`, serving on `port`; yields its pids (master and workers)."""
    directory.mkdir(parents=True)
    directory.chmod(0o755)  # workers run as `nobody` and use the temp paths in here
    path = directory / "nginx.conf"
    path.write_text(conf)
    log = directory / "error.log"
    command = [tool("nginx"), "-p", str(directory), "-e", str(log), "-c", str(path)]
    process = subprocess.Popen([*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL)
    with serving_process(process, f"http://127.0.0.1:{port}/", what, log, within=10):
        yield family(process.pid)


@contextmanager
def gateway(fields: dict[str, Any], port: int, processes: int, log: Path) -> Iterator[list[int]]:
    env = os.environ | {f"WAPI_{name.upper()}": str(value) for name, value in fields.items()}
    env |= {"WAPI_GATEWAY_PORT": str(port), "WAPI_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "cli", "gateway", "--processes", str(processes)]
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    with serving_process(process, f"http://127.0.0.1:{port}/readyz", "the gateway", log, within=60):
        time.sleep(0.5)  # every process of the supervisor is up
        yield family(process.pid)


async def wrk(target: Target, seconds: float, connections: int, threads: int, lua: str) -> Run:
    command = [tool("wrk"), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    command += ["-s", lua]
    if target.auth:
        command += ["-H", f"Authorization: Bearer {target.auth}"]
    cpu = cpu_of(target.pids)
    process = await asyncio.create_subprocess_exec(
        *command, target.url, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), seconds + 60)
    cpu = cpu_of(target.pids) - cpu
    lines = [line for line in out.decode().splitlines() if line.startswith("WRK ")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"wrk {target.url} failed: {out.decode()} {err.decode()}")
    found = json.loads(lines[0][4:])
    return Run(
        found["requests"],
        found["micros"] / 1e6,
        found["status"],
        found["socket"],
        found["p50"] / 1000,
        found["p99"] / 1000,
        cpu,
    )


def median_of(runs: list[Run]) -> Run:
    return Run(
        int(statistics.median(r.requests for r in runs)),
        statistics.median(r.seconds for r in runs),
        sum(r.bad_status for r in runs),
        sum(r.socket_errors for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        statistics.median(r.cpu / r.seconds for r in runs),  # cores, not seconds
    )


async def management_latency(api: httpx.AsyncClient, path: str, calls: int) -> list[float]:
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        response = await api.get(path)
        seconds.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text}")
    return seconds


def ms(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


async def sse(
    url: str, streams: int, seconds: float, auth: str, watch: list[int]
) -> dict[str, Any]:
    """Run the SSE client against `url`; the proxy's RSS (KiB) idle and with the streams held."""
    idle = rss_kib(watch) if watch else 0
    command = [sys.executable, str(ROOT / "bench/_sse.py"), "client", url]
    command += ["--streams", str(streams), "--seconds", str(seconds), "--auth", auth]
    process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
    assert process.stdout is not None
    held = json.loads(await asyncio.wait_for(process.stdout.readline(), 120))
    cpu = cpu_of(watch)
    loaded = rss_kib(watch) if watch else 0
    result: dict[str, Any] = json.loads(await asyncio.wait_for(process.stdout.readline(), 120))
    cpu = cpu_of(watch) - cpu
    await process.wait()
    result.update(
        held_at_sample=held["held"],
        rss_idle_kib=idle,
        rss_held_kib=loaded,
        cpu_cores=cpu / seconds,
    )
    return result


async def main(args: argparse.Namespace) -> None:
    print("invoke gateway against nginx and against the backend directly")
    print(f"  load average at the start: {load_average()} (1, 5, 15 min; 2 cores)")
    async with running_stack(containers=False, api_process=True) as stack:
        with ExitStack() as stage:
            results = await _phases(args, stack, stage)
    report(args, *results)
    print(f"  load average at the end: {load_average()}")


async def _phases(args: argparse.Namespace, stack: Any, stage: ExitStack) -> tuple[Any, ...]:
    directory = Path(tempfile.mkdtemp(prefix="wapi-bench-gw-"))
    stage.callback(shutil.rmtree, directory, ignore_errors=True)
    ports = {name: free_port() for name in (*THROUGHPUT, "sse", "gateway-sse")}
    backend = f"127.0.0.1:{ports['direct']}"
    sse_backend = f"127.0.0.1:{ports['sse']}"
    common = {"dir": directory / "backend", "port": ports["direct"]}
    pids: dict[str, list[int]] = {"direct": []}
    stage.enter_context(
        nginx(directory / "backend", BACKEND_CONF.format(**common), ports["direct"], "the backend")
    )
    sse_process = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
        [sys.executable, str(ROOT / "bench/_sse.py"), "backend", str(ports["sse"]),
         "--interval", str(args.sse_interval)]
    )  # fmt: skip
    stage.callback(sse_process.terminate)
    (deployment_id, token), (sse_deployment, sse_token) = await _deployments(
        stack, backend, sse_backend
    )
    for workers in (1, 2):
        name = f"nginx-{workers}"
        conf = PROXY_CONF.format(
            workers=workers,
            dir=directory / name,
            port=ports[name],
            backend=backend,
            sse=sse_backend,
        )
        pids[name] = stage.enter_context(nginx(directory / name, conf, ports[name], name))
    for name, processes in (("gateway-1", 1), ("gateway-2", 2), ("gateway-sse", 1)):
        fields = {
            "state_dir": directory / name,  # where its processes add up their metrics
            "database_url": stack.settings.database_url,
            # 2,000 streams from one caller to one replica, through one process.
            "gateway_max_calls_per_caller": 4096,
            "gateway_max_connections_per_replica": 4096,
        }
        log = directory / f"{name}.log"
        pids[name] = stage.enter_context(gateway(fields, ports[name], processes, log))
    prefix = f"/api/v2/endpoints/deployments/{deployment_id}"
    targets = {
        name: Target(
            name,
            f"http://127.0.0.1:{ports[name]}{prefix if name.startswith('gateway') else ''}/",
            pids[name],
            token if name.startswith("gateway") else "",
        )
        for name in THROUGHPUT
    }
    lua = directory / "report.lua"
    lua.write_text(REPORT_LUA)
    for target in targets.values():
        await wrk(target, WARMUP_SECONDS, args.connections, args.threads, str(lua))
    throughput: dict[str, list[Run]] = {name: [] for name in THROUGHPUT}
    for index in range(args.rounds):
        turn = index % len(THROUGHPUT)
        for name in THROUGHPUT[turn:] + THROUGHPUT[:turn]:
            run = await wrk(targets[name], args.seconds, args.connections, args.threads, str(lua))
            throughput[name].append(run)
    moderate: dict[str, list[Run]] = {name: [] for name in MODERATE}
    for index in range(args.rounds):
        turn = index % len(MODERATE)
        for name in MODERATE[turn:] + MODERATE[:turn]:
            moderate[name].append(await wrk(targets[name], args.seconds, 2, 1, str(lua)))

    management = f"/api/v2/console/deployments/{deployment_id}/"
    idle = await management_latency(stack.api, management, args.management_calls)
    saturating = asyncio.create_task(
        wrk(targets["gateway-2"], args.seconds * 2, args.connections * 2, args.threads, str(lua))
    )
    await asyncio.sleep(1)
    loaded = await management_latency(stack.api, management, args.management_calls)
    saturation = await saturating

    sse_targets = {
        "direct": (f"http://{sse_backend}/sse/stream", "", []),
        # A gateway process of its own, that served nothing before: its memory is the
        # streams'.
        "gateway-1": (
            f"http://127.0.0.1:{ports['gateway-sse']}/api/v2/endpoints/deployments/"
            f"{sse_deployment}/sse/stream",
            sse_token,
            pids["gateway-sse"],
        ),
        "nginx-1": (f"http://127.0.0.1:{ports['nginx-1']}/sse/stream", "", pids["nginx-1"]),
    }
    streams: dict[str, dict[str, Any]] = {}
    for name, (url, auth, watch) in sse_targets.items():
        streams[name] = await sse(url, args.streams, args.sse_seconds, auth, watch)
    audit = await _audit_outcome(stack, ports["gateway-1"])
    return throughput, moderate, idle, loaded, saturation, streams, audit


async def _deployments(stack: Any, *backends: str) -> list[tuple[str, str]]:
    """A deployment in front of each backend (a workload whose ready replica is that
    address), with an invoke token each: [(deployment id, token)]."""
    made = []
    async with stack.sessions() as session, session.begin():
        for index, address in enumerate(backends):
            workload = await registered_workload(session, f"bench-{index}")
            session.add(ready_replica(workload.id, address))
            body = DeploymentCreate(name=f"bench-{index}", workload_id=workload.id)
            deployment = await deployments.create_deployment(session, body, ADMIN)
            _, token = await deployment_access.create_token(session, deployment.id, "b", "admin")
            made.append((deployment.id, token))
    return made


async def _audit_outcome(stack: Any, gateway_port: int) -> str:
    await asyncio.sleep(1.5)  # the last batches are written every half second
    async with httpx.AsyncClient(trust_env=False) as client:
        text = (await client.get(f"http://127.0.0.1:{gateway_port}/metrics")).text
    lines = [line for line in text.splitlines() if line.startswith("wapi_gateway_audit_total")]
    verified = (await stack.api.get("/api/v2/auditEvents/verify/")).json()
    return f"{', '.join(lines)}; chain valid: {verified['valid']} ({verified['checked']} records)"


def report(
    args: argparse.Namespace,
    throughput: dict[str, list[Run]],
    moderate: dict[str, list[Run]],
    idle: list[float],
    loaded: list[float],
    saturation: Run,
    streams: dict[str, dict[str, Any]],
    audit: str,
) -> None:
    print("  backend: nginx answering from memory, 1 worker, keep-alive; GET / (23 bytes)")
    print(f"  {NGINX_CHOICES}")
    print(
        f"throughput: wrk -t{args.threads} -c{args.connections},"
        f" {args.rounds} rounds of {args.seconds} s"
    )
    print("  in rotating order, median per target; CPU: the proxy's processes, in cores, and")
    print("  per call")
    medians = {name: median_of(runs) for name, runs in throughput.items()}
    print(
        f"  {'':<11}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU':>6}{'us/call':>9}"
        f"{'non-2xx':>9}{'sock err':>9}"
    )
    for name, run in medians.items():
        print(
            f"  {name:<11}{run.rate:9.0f}{run.p50_ms:9.3f}{run.p99_ms:9.3f}{run.cpu:6.2f}"
            f"{run.cpu / run.rate * 1e6:9.1f}{run.bad_status:9d}{run.socket_errors:9d}"
        )
    for name, runs in throughput.items():
        print(f"    rounds {name}: " + " / ".join(f"{r.rate:.0f}" for r in runs))
    for mine, theirs in (
        ("gateway-1", "nginx-1"),
        ("gateway-2", "nginx-2"),
        ("gateway-1", "direct"),
    ):
        a, b = medians[mine], medians[theirs]
        print(
            f"  {mine}/{theirs}: throughput {a.rate / b.rate:.2f}x, p50 {a.p50_ms / b.p50_ms:.2f}x,"
            f" p99 {a.p99_ms / b.p99_ms:.2f}x"
        )
    one, two = medians["gateway-1"], medians["gateway-2"]
    print(f"  gateway-2/gateway-1: throughput {two.rate / one.rate:.2f}x")
    print("moderate load: wrk -t1 -c2 (two calls in flight), median p50 and p99 per target")
    mod = {name: median_of(runs) for name, runs in moderate.items()}
    for name, run in mod.items():
        added = run.p50_ms - mod["direct"].p50_ms
        print(
            f"  {name:<11}{run.rate:9.0f} req/s  p50 {run.p50_ms:.3f} ms"
            f" (+{added:.3f} over direct)  p99 {run.p99_ms:.3f} ms"
        )
    print("management API (GET a deployment, the API process) while wrk saturates gateway-2")
    print(
        f"  idle: p50 {ms(idle, 0.5):.2f} ms, p99 {ms(idle, 0.99):.2f} ms;"
        f" gateway saturated ({saturation.rate:.0f} req/s, -c{args.connections * 2}):"
        f" p50 {ms(loaded, 0.5):.2f} ms, p99 {ms(loaded, 0.99):.2f} ms;"
        f" {len(loaded)} calls, all 200"
    )
    print(
        f"server-sent events: {args.streams} streams per target, one event per stream every"
        f" {args.sse_interval} s, latency measured over {args.sse_seconds} s"
    )
    direct = streams["direct"]["p50_ms"]
    for name, result in streams.items():
        held = result["held"]
        per = (result["rss_held_kib"] - result["rss_idle_kib"]) / max(1, held)
        memory = (
            f", RSS {result['rss_idle_kib'] / 1024:.0f} -> {result['rss_held_kib'] / 1024:.0f} MiB"
            f" ({per:.1f} KiB per stream), CPU {result['cpu_cores']:.2f} cores"
            if name != "direct"
            else ""
        )
        print(
            f"  {name:<10} held {held}, {result['events']} events, p50 {result['p50_ms']:.3f} ms"
            f" (+{result['p50_ms'] - direct:.3f}), p99 {result['p99_ms']:.3f} ms,"
            f" failed {result['failed']}{memory}"
        )
    print(f"  audit of the gateway's calls: {audit}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--management-calls", type=int, default=200)
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--sse-seconds", type=float, default=10)
    parser.add_argument("--sse-interval", type=float, default=0.25)
    ensure_tools()
    asyncio.run(main(parser.parse_args()))
