"""Invoke gateway throughput and latency against the container directly and against nginx.

One replica of the demo image (`serve`: busybox httpd, one connection per request) runs under
a deployment. The same load generator (wrk: a few connections, a fixed duration, its latency
histogram) hits three targets with the same path: the container's published port, nginx
(Debian's nginx-light) as a reverse proxy in front of that port, and the gateway
`/api/v2/endpoints/deployments/{id}/<path>` with an invoke token. Targets take turns in a
rotating order over a few rounds, so machine noise hits all three alike.

Why one module of this length: the three targets, their set-up and the report are one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _stack import (
    READY_PROBE,
    ROOT,
    WORKLOADS,
    Stack,
    process_cpu_seconds,
    running_stack,
    serving_process,
)

from tests.support.postgres import free_port

ARTIFACTS = "/api/v2/registry/artifacts/"
DEPLOYMENTS = "/api/v2/console/deployments/"
TARGETS = ("direct", "nginx", "gateway")
WARMUP_SECONDS = 2
# wrk's `done` hook prints the exact numbers (microseconds) as one JSON line. wrk counts a
# status >= 400 as a status error; the demo image answers nothing in 3xx.
REPORT_LUA = """done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "micros": %d, "status": %d, "socket": %d, "p50": %d, "p99": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""
NGINX_CONF = """worker_processes 1;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream container {{ server {backend}; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://container;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""
NGINX_CHOICES = [
    "worker_processes 1 (the gateway is one uvicorn worker; Debian's default `auto` = 2 here)",
    "proxy_pass to an upstream with no `keepalive` (busybox closes every connection anyway),",
    "  nginx's default HTTP/1.0 upstream requests, proxy buffering on (default), Host and",
    "  X-Forwarded-For/-Proto set; client keep-alive on (default); access log on, combined",
    "  format, to a temp file (the gateway audits every call); config, pid, logs and temp",
    "  paths in a temp dir, run as `nginx -p <dir> -e <log> -c <conf> -g 'daemon off;'`",
]


@dataclass
class Run:
    requests: int
    seconds: float
    bad_status: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    cpu: float  # CPU seconds the API process used meanwhile

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def tool(name: str) -> str:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin") or ""


def ensure_tools() -> None:
    if not (tool("nginx") and tool("wrk")):
        print("nginx or wrk missing: running scripts/ensure-system-packages.sh bench")
        subprocess.run([str(ROOT / "scripts/ensure-system-packages.sh"), "bench"], check=False)
    missing = [name for name in ("nginx", "wrk") if not tool(name)]
    if missing:
        raise SystemExit(
            f"bench/gateway.py needs {' and '.join(missing)} (Debian packages nginx-light, wrk):"
            " run scripts/ensure-system-packages.sh bench as root"
        )


async def wrk(url: str, seconds: int, options: list[str], api_pid: int) -> Run:
    command = [tool("wrk"), *options, f"-d{seconds}s", "--latency", url]
    cpu = process_cpu_seconds(api_pid)
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), seconds + 60)
    cpu = process_cpu_seconds(api_pid) - cpu
    lines = [line for line in out.decode().splitlines() if line.startswith("WRK ")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(
            f"wrk {url} failed ({process.returncode}): {out.decode()} {err.decode()}"
        )
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


@contextmanager
def nginx(backend: str) -> Iterator[str]:
    """nginx in front of `backend` (host:port), on a free loopback port; yields its URL."""
    directory = Path(tempfile.mkdtemp(prefix="wapi-bench-nginx-"))
    directory.chmod(0o755)  # the worker runs as `nobody` and uses the temp paths in here
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, port=port, backend=backend))
    log = directory / "error.log"
    command = [tool("nginx"), "-p", str(directory), "-e", str(log), "-c", str(conf)]
    process = subprocess.Popen([*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        # SIGTERM at the end: fast shutdown of the master and its worker.
        with serving_process(process, f"{url}/healthz", "nginx", log, within=10):
            yield url
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def post(stack: Stack, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await stack.api.post(path, json=body)
    if response.status_code != 201:
        raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
    created: dict[str, Any] = response.json()
    return created


async def deployed(stack: Stack) -> tuple[str, str, str]:
    """A registered artifact, one running replica of it and a deployment in front of it:
    (the workload id, the deployment id, an invoke token)."""
    container = {
        "imageUri": stack.image,
        "port": 8080,
        "command": ["serve"],
        "readinessProbe": READY_PROBE,
    }
    spec = {"containerGroups": [{"containers": [container]}]}
    artifact = await post(stack, ARTIFACTS, {"name": "gw", "status": "registered", "spec": spec})
    runtime = {"containerGroups": [{"replicaCount": 1}]}
    body = {"name": "gw", "artifactId": artifact["id"], "runtime": runtime}
    workload_id: str = (await post(stack, WORKLOADS, body))["id"]
    stack.created.add(workload_id)
    await stack.wait_running(workload_id, poll=0.2)
    body = {"name": "gw", "workloadId": workload_id}
    deployment_id: str = (await post(stack, DEPLOYMENTS, body))["id"]
    token: str = (await post(stack, f"{DEPLOYMENTS}{deployment_id}/tokens/", {"name": "bench"}))[
        "token"
    ]
    return workload_id, deployment_id, token


async def replica(stack: Stack, workload_id: str) -> dict[str, Any]:
    """The workload's replica, once it has a published address."""
    for _ in range(100):
        found = (await stack.api.get(f"{WORKLOADS}{workload_id}/replicas/")).json()
        if found and found[0]["address"]:
            first: dict[str, Any] = found[0]
            return first
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the replica has no address: {found}")


async def answers(url: str, headers: dict[str, str]) -> None:
    """Wait until `url` answers 200 (the gateway learns of a new deployment within seconds)."""
    async with httpx.AsyncClient(headers=headers, trust_env=False, timeout=10) as client:
        for _ in range(100):
            if (response := await client.get(url)).status_code == 200:
                return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url}: {response.status_code} {response.text}")


def median_run(runs: list[Run]) -> tuple[float, float, float, int, int]:
    return (
        statistics.median(r.rate for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.bad_status for r in runs),
        sum(r.socket_errors for r in runs),
    )


async def audit_check(stack: Stack, sent: int) -> None:
    await asyncio.sleep(2)  # the audit writer flushes every 0.5 s
    params: dict[str, str | int] = {"action": "deployment.invoke", "limit": 1}
    page = (await stack.api.get("/api/v2/auditEvents/", params=params)).json()
    metrics = (await stack.api.get("/metrics")).text.splitlines()
    writer = [line for line in metrics if line.startswith("wapi_audit_")]
    print(f"  audit: {page['totalCount']} deployment.invoke records; wrk counted {sent} gateway")
    print("  responses (warm-ups included; calls cut off at the end of a run are audited too)")
    print(f"  audit writer: {', '.join(writer)}")


async def main(
    paths: list[str], rounds: int, seconds: int, threads: int, conns: int, versions: str
) -> None:
    options = [f"-t{threads}", f"-c{conns}"]
    results: dict[str, dict[str, list[Run]]] = {p: {t: [] for t in TARGETS} for p in paths}
    sent = 0
    async with running_stack(api_process=True) as stack:
        assert stack.api_pid is not None
        workload_id, deployment_id, token = await deployed(stack)
        address: str = (await replica(stack, workload_id))["address"]
        gateway = f"{stack.url}/api/v2/endpoints/deployments/{deployment_id}"
        with nginx(address) as proxy, tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
            lua.write(REPORT_LUA)
            lua.flush()
            auth = ["-H", f"Authorization: Bearer {token}"]
            wrk_options = {
                "direct": [*options, "-s", lua.name],
                "nginx": [*options, "-s", lua.name],
                "gateway": [*options, "-s", lua.name, *auth],
            }
            for path in paths:
                urls = {"direct": f"http://{address}{path}", "nginx": proxy + path}
                urls["gateway"] = gateway + path
                for target in TARGETS:
                    headers = {"Authorization": f"Bearer {token}"} if target == "gateway" else {}
                    await answers(urls[target], headers)
                    warm = await wrk(
                        urls[target], WARMUP_SECONDS, wrk_options[target], stack.api_pid
                    )
                    sent += warm.requests if target == "gateway" else 0
                for index in range(rounds):
                    turn = index % len(TARGETS)
                    for target in TARGETS[turn:] + TARGETS[:turn]:
                        try:
                            run = await wrk(
                                urls[target], seconds, wrk_options[target], stack.api_pid
                            )
                        except RuntimeError as error:
                            now = await stack.api.get(f"{WORKLOADS}{workload_id}/replicas/")
                            raise RuntimeError(f"{error}; replicas now: {now.text}") from None
                        results[path][target].append(run)
                        sent += run.requests if target == "gateway" else 0
            after = await replica(stack, workload_id)
        print_report(results, address, rounds, seconds, threads, conns)
        print(f"  tools: {versions}")
        moved = "unchanged" if after["address"] == address else f"now {after['address']}"
        print(f"  the replica at the end: restarts {after['restarts']}, address {moved}")
        await audit_check(stack, sent)
    print(f"  containers removed at teardown: {stack.leftovers} (expected 1)")


def print_report(
    results: dict[str, dict[str, list[Run]]],
    address: str,
    rounds: int,
    seconds: int,
    threads: int,
    conns: int,
) -> None:
    print("invoke gateway against the container directly and against nginx")
    print(f"  backend: one replica of the demo image `serve` (busybox httpd) at {address}")
    print(f"  load: wrk, {threads} threads, {conns} connections, the same for every target")
    print(f"  {WARMUP_SECONDS} s warm-up per target, then {rounds} rounds of {seconds} s runs in")
    print("  rotating order; per target the median of the rounds; non-2xx (wrk counts a status")
    print("  >= 400; the demo image answers no 3xx) and socket errors summed over the rounds")
    print("  nginx config:")
    for line in NGINX_CHOICES:
        print(f"    {line}")
    for path, by_target in results.items():
        print(f"GET {path}")
        for index in range(rounds):
            cells = "   ".join(
                f"{target} {run.rate:5.0f}/s p50 {run.p50_ms:5.2f} p99 {run.p99_ms:6.2f}"
                for target, run in ((t, by_target[t][index]) for t in TARGETS)
            )
            print(f"  round {index + 1}: {cells}")
        print(f"  {'':<9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'sock err':>9}")
        summary = {target: median_run(runs) for target, runs in by_target.items()}
        for target, (rate, p50, p99, bad, sock) in summary.items():
            cpu = sum(r.cpu for r in by_target[target]) / sum(r.seconds for r in by_target[target])
            print(
                f"  {target:<9}{rate:9.0f}{p50:9.2f}{p99:9.2f}{bad:9d}{sock:9d}"
                f"   API process CPU {cpu:4.0%} of a core"
            )
        gw = summary["gateway"]
        for other in ("direct", "nginx"):
            base = summary[other]
            print(
                f"  gateway/{other:<6}: throughput {gw[0] / base[0]:5.2f}x"
                f"   p50 {gw[1] / base[1]:5.2f}x   p99 {gw[2] / base[2]:5.2f}x"
            )
    print("notes:")
    if any(run.socket_errors for by_target in results.values() for run in by_target["direct"]):
        print(
            "  - socket errors direct: a CGI sends no Content-Length, so busybox ends the body by"
        )
        print("    closing the connection; wrk counts the response, then a read error at the close")
        print("    (one per request); the proxies frame the body for their client, which sees none")
    print("  - direct and nginx open a new TCP connection to busybox httpd per request, and so")
    print(
        "    does the gateway (its httpx pool cannot reuse a closed connection); the client keeps"
    )
    print("    its connections to nginx and to the gateway alive")
    print("  - the gateway is the API process as production runs it (`python -m cli")
    print("    api`: uvicorn, one worker), serving the management API too; it shares the")
    print("    machine's cores with wrk, nginx, Podman, the Temporal dev server and the worker")
    print("    (in this bench process). Per call it authenticates the token (in-memory lookup),")
    print("    counts and times it (Prometheus) and queues an audit entry (written in batches)")
    print("  - 'API process CPU' is the API process's CPU time during a target's runs: near")
    print("    100% means the gateway is bound by its one Python core")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--path", action="append", help="path to request (default /healthz and /cgi-bin/echo)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the targets")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    args = parser.parse_args()
    paths = args.path or ["/healthz", "/cgi-bin/echo"]
    ensure_tools()
    wrk_version = subprocess.run([tool("wrk"), "-v"], capture_output=True, text=True).stdout
    nginx_version = subprocess.run([tool("nginx"), "-v"], capture_output=True, text=True).stderr
    versions = f"{wrk_version.splitlines()[0]}; {nginx_version.strip()}"
    asyncio.run(main(paths, args.rounds, args.seconds, args.threads, args.connections, versions))
