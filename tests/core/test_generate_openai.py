"""The openai engine against a real vLLM OpenAI-compatible server on 127.0.0.1."""

import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from r1data.config import GenerateConfig
from r1data.engines import configure_vllm_env
from r1data.errors import EngineError
from r1data.generate import generate
from r1data.prompts import ingest_synth
from r1data.store import SAMPLES_SCHEMA

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model):
    configure_vllm_env(local_model=True)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model),
         "--host", "127.0.0.1", "--port", str(port), "--enforce-eager", "--seed", "0",
         "--max-model-len", "512", "--max-num-batched-tokens", "32768"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode()[-3000:])
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("vLLM server did not become healthy in 240 s")
    yield url + "/v1"
    os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)


def test_openai_engine_rows_match_the_vllm_schema(store, tiny_model, server):
    ingest_synth(store, ["arithmetic"], 3, 0, 1)
    cfg = GenerateConfig(model=str(tiny_model), engine="openai", base_url=[server], n=8,
                         max_tokens=12, concurrency=2)
    rep = generate(store, cfg, "srv", progress=False)
    assert rep.samples_written == 24
    table = store.read("samples", "srv")
    assert table.schema.names == SAMPLES_SCHEMA.names
    assert table.schema.types == SAMPLES_SCHEMA.types
    rows = table.to_pylist()
    assert sorted(r["sample_idx"] for r in rows) == sorted(list(range(8)) * 3)
    for r in rows:
        assert r["engine"] == "openai" and r["temperature"] == pytest.approx(0.6)
        assert 1 <= r["num_tokens"] <= 12 and r["finish_reason"] in ("stop", "length")
    # a rerun asks the server for nothing
    assert generate(store, cfg, "srv", progress=False).samples_written == 0


class GateProxy:
    """An HTTP proxy in front of the vLLM server that counts the requests in flight and holds
    each until `gate` are (or `timeout` s have passed: a client that never gets there costs one
    timeout, then requests flow), so the most it sees is the client's concurrency, not how fast
    the server answers. A request leaves the count before its answer is sent: the client cannot
    start the next one before, so the count never runs ahead of the client."""

    def __init__(self, upstream: str, gate: int, timeout: float = 60.0):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.in_flight = self.most = 0
        lock, opened = threading.Lock(), threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    proxy.in_flight += 1
                    proxy.most = max(proxy.most, proxy.in_flight)
                    if proxy.in_flight >= gate:
                        opened.set()
                try:
                    opened.wait(timeout) or opened.set()
                    r = httpx.post(upstream + self.path.removeprefix("/v1"), content=body,
                                   headers={"Content-Type": "application/json"}, timeout=120)
                finally:
                    with lock:
                        proxy.in_flight -= 1
                self.send_response(r.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_concurrency_requests_stay_in_flight_across_shards(store, tiny_model, server):
    """One prompt a shard, 4 in flight: a proxy that holds requests until 4 are in flight sees
    4 at once, more than one shard's (and no more than the concurrency)."""
    ingest_synth(store, ["arithmetic"], 10, 0, 1)
    with GateProxy(server, gate=4) as proxy:
        cfg = GenerateConfig(model=str(tiny_model), engine="openai", base_url=[proxy.url], n=1,
                             max_tokens=8, concurrency=4, shard_prompts=1, system_prompt=None)
        rep = generate(store, cfg, "inflight", progress=False)
    assert rep.samples_written == 10 and len(rep.shards) == 10
    assert proxy.most == 4 and proxy.in_flight == 0


def test_unreachable_server_fails_after_retries(store, tiny_model):
    ingest_synth(store, ["arithmetic"], 1, 0, 1)
    cfg = GenerateConfig(model=str(tiny_model), engine="openai", n=2, max_tokens=4, retries=1,
                         base_url=[f"http://127.0.0.1:{free_port()}/v1"], timeout=5)
    with pytest.raises(EngineError, match="gave up after 2 tries"):
        generate(store, cfg, "down", progress=False)
    assert store.read("samples", "down").num_rows == 0
