"""Generation engines: offline vLLM (default) and any OpenAI-compatible server, same output."""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from r1data.config import GenerateConfig
from r1data.errors import EngineError
from r1data.procs import sweep_dead_owners


@dataclass
class Completion:
    text: str
    num_tokens: int | None
    finish_reason: str | None


def cache_dir() -> Path:
    """Where vLLM/inductor caches and RPC sockets go: R1DATA_CACHE_DIR, else ./.cache/r1data."""
    d = Path(os.environ.get("R1DATA_CACHE_DIR") or Path.cwd() / ".cache" / "r1data")
    d.mkdir(parents=True, exist_ok=True)
    return d.resolve()


def has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        return False


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 matmuls in hardware (AMX or AVX512-BF16)."""
    import torch

    cpu = torch.cpu
    return any(getattr(cpu, f, lambda: False)() for f in ("_is_amx_tile_supported",
                                                          "_is_avx512_bf16_supported"))


def engine_dtype(requested: str, gpu: bool) -> str:
    """vLLM's dtype: `auto` takes the model's (bf16 for most), except on a CPU without bf16
    units, where emulated bf16 is slower than fp32: SmolLM2-135M sampled 103 tokens/s in bf16
    and 174 in fp32 on the 2-core AVX-512 machine without AMX (BENCHMARKS.md)."""
    if requested != "auto" or gpu or cpu_has_native_bf16():
        return requested
    return "float32"


def configure_vllm_env(*, local_model: bool) -> dict[str, str]:
    """Sane vLLM defaults for a machine without a GPU; the user's own env vars always win."""
    root = cache_dir()
    env = {
        "VLLM_CACHE_ROOT": str(root / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(root / "inductor"),
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_LOGGING_LEVEL": "WARNING",  # keep the progress bar readable
        "DO_NOT_TRACK": "1",
    }
    # A private temp dir for RPC sockets and the vllm_dist_* files vLLM leaves in $TMPDIR; the
    # engine removes it on close, and the next start removes those of killed processes (the
    # owner's pid is in the name). A TMPDIR the user chose is respected.
    private = tempfile.mkdtemp(prefix=f"vllm-{os.getpid()}-", dir=private_tmp_root())
    env["VLLM_RPC_BASE_PATH"] = private
    env["TMPDIR"] = private
    if local_model:
        env["HF_HUB_OFFLINE"] = "1"
    if not has_gpu():
        cpus = sorted(os.sched_getaffinity(0))
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        # Without it vLLM asks for 92% of RAM and fails; a tenth of RAM, 1-8 GiB, fits here.
        env["VLLM_CPU_KVCACHE_SPACE"] = str(int(min(8, max(1, mem_gib // 10))))
        # vLLM keeps one core for itself by default; binding all doubled throughput on 2 cores.
        env["VLLM_CPU_OMP_THREADS_BIND"] = f"{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else "all"
    applied = {"private_tmp": private}
    for k, v in env.items():
        if k not in os.environ:
            os.environ[k] = v
            applied[k] = v
    return applied


# vLLM puts ZeroMQ ipc sockets (a uuid name) in VLLM_RPC_BASE_PATH; a unix socket path has at
# most 107 bytes, so a cache dir deep inside a checkout or a pytest tmp dir would break start-up.
_SOCKET_PATH_MAX = 107
_SOCKET_NAME = 36 + 16  # a uuid, the mkdtemp suffix and separators


def private_tmp_root() -> Path:
    """The folder private temp dirs go in: the cache dir's tmp/, or /tmp/r1data-<uid> when
    the cache dir is too deep for a socket path. Stale dirs of dead owners are swept first."""
    root = cache_dir() / "tmp"
    if len(str(root)) + len(f"/vllm-{os.getpid()}-") + _SOCKET_NAME > _SOCKET_PATH_MAX:
        root = Path(tempfile.gettempdir()) / f"r1data-{os.getuid()}"
    root.mkdir(parents=True, exist_ok=True)
    sweep_stale_tmp(root)
    return root


def sweep_stale_tmp(tmp: Path) -> list[Path]:
    """Remove private temp dirs (`vllm-<pid>-*`) whose owner is dead; a SIGKILL skips close()."""
    return sweep_dead_owners(tmp, "vllm-")


# --- vLLM's processes die with their parent ----------------------------------------------------
# vLLM starts its EngineCore (~700 MB), which starts a model worker, with multiprocessing spawn,
# and a SIGKILLed `r1data generate` left both running (the worker notices its parent's death
# only after ~10 s; the EngineCore never). vLLM pickles a process's target by reference, so
# pointing `EngineCoreProc.run_engine_core` and `WorkerProc.worker_main` at module-level
# functions here makes each spawned child run them first: the child asks the kernel for SIGKILL
# when its parent dies (PR_SET_PDEATHSIG) and, since that signal follows the thread that
# started the child rather than its process, also polls its parent pid from a daemon thread.
_PARENT_ENV = "R1DATA_ENGINE_PARENT"
_TARGETS = {  # our entry point -> (vLLM module, class, method) it stands in for
    "_engine_core_main": ("vllm.v1.engine.core", "EngineCoreProc", "run_engine_core"),
    "_worker_main": ("vllm.v1.executor.multiproc_executor", "WorkerProc", "worker_main"),
}
_ORIGINALS: dict[str, object] = {}


def _die_with_parent(parent: int, deathsig: bool) -> None:
    import ctypes
    import signal
    import time

    if deathsig:  # only when the parent's main thread started us: the signal follows a thread
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - not Linux: the watchdog remains
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    if os.getppid() != parent:  # died before we got here
        os._exit(1)
    threading.Thread(target=watch, name="r1data-parent-watch", daemon=True).start()


def _guarded_start(name: str, args: tuple, kwargs: dict):
    """In a spawned child: die with the parent, guard our own children, run vLLM's target."""
    import importlib

    if parent := os.environ.get(_PARENT_ENV):
        pid, _, main = parent.partition(":")
        _die_with_parent(int(pid), main == "1")
    install_process_guard()  # the EngineCore's worker: guarded against the EngineCore's death
    module, cls, attr = _TARGETS[name]
    return _ORIGINALS.get(name, getattr(getattr(importlib.import_module(module), cls), attr))(
        *args, **kwargs)


def _engine_core_main(*args, **kwargs):
    return _guarded_start("_engine_core_main", args, kwargs)


def _worker_main(*args, **kwargs):
    return _guarded_start("_worker_main", args, kwargs)


def install_process_guard() -> None:
    """Route vLLM's EngineCore and worker starts through the functions above (idempotent).

    Sets `_PARENT_ENV` for the children this process spawns; `VllmEngine` removes it once its
    engine is up, so later children (a server a test starts) do not inherit it.
    """
    import importlib

    for name, (module, cls, attr) in _TARGETS.items():
        owner = getattr(importlib.import_module(module), cls)
        ours = globals()[name]
        if getattr(owner, attr) is not ours:
            _ORIGINALS[name] = getattr(owner, attr)
            setattr(owner, attr, staticmethod(ours))
    main = threading.current_thread() is threading.main_thread()
    os.environ[_PARENT_ENV] = f"{os.getpid()}:{int(main)}"


def check_model(cfg: GenerateConfig) -> None:
    """Fail before any work on a model vLLM could not load: not a folder, and not a hub id."""
    if cfg.engine != "vllm":
        return
    path = Path(cfg.model)
    if path.exists():
        if not (path / "config.json").exists():
            raise EngineError(f"model {cfg.model}: folder has no config.json")
    elif cfg.model.startswith((".", "/", "~")) or cfg.model.count("/") != 1:
        raise EngineError(f"model {cfg.model!r}: no such folder (prepare one with "
                          "`r1data models prepare`, or give a local HF folder)")


class VllmEngine:
    """The offline `vllm.LLM`; call from under `if __name__ == "__main__"` (vLLM spawns)."""

    name = "vllm"

    def __init__(self, cfg: GenerateConfig, **llm_kwargs):
        check_model(cfg)
        local = Path(cfg.model).exists()
        self.env = configure_vllm_env(local_model=local)
        self.private_tmp = self.env["private_tmp"]
        gpu = has_gpu()
        try:
            from vllm import LLM
        except ImportError as e:
            raise EngineError(f"vLLM is not importable ({e}); run scripts/setup.sh") from None
        kwargs = dict(
            model=cfg.model, seed=cfg.seed, dtype=engine_dtype(cfg.dtype, gpu),
            enforce_eager=(not gpu) if cfg.enforce_eager is None else cfg.enforce_eager,
            tensor_parallel_size=cfg.tensor_parallel_size,
        )
        if cfg.max_model_len:
            kwargs["max_model_len"] = cfg.max_model_len
        if gpu:
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        else:
            # Per-request seeds crash vLLM-CPU once a prompt's n requests span scheduler
            # batches; the engine is seeded instead, and batches are made large.
            kwargs["max_num_batched_tokens"] = 32768
        kwargs.update(llm_kwargs)  # extra vllm.LLM arguments (the GRPO trainer's executor)
        install_process_guard()
        try:
            self.llm = LLM(**kwargs)
        except Exception as e:  # vLLM raises many types; the user needs the first line
            raise EngineError(f"vLLM failed to start on {cfg.model}: "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
        finally:
            os.environ.pop(_PARENT_ENV, None)
        self.cfg = cfg

    def generate(self, conversations: list[list[dict]], ns: list[int],
                 cfg: GenerateConfig | None = None) -> list[list[Completion]]:
        return collect(self, conversations, ns, cfg)

    def stream(self, requests: Iterable[tuple[object, list[dict], int]],
               cfg: GenerateConfig | None = None) -> Iterator[tuple[object, list[Completion]]]:
        """(key, conversation, n) in, (key, n completions) out as each prompt finishes.

        Requests are added while the engine steps, keeping twice the scheduler's sequence
        budget queued: the batch stays full across shards as it does when `LLM.generate` is
        given every prompt at once, but a kill loses only what is in flight and
        `requests` may be a lazy generator (a writer claiming prompts as it goes).
        """
        from vllm import SamplingParams

        cfg = cfg or self.cfg
        engine = self.llm.llm_engine
        budget = 2 * engine.vllm_config.scheduler_config.max_num_seqs
        todo = iter(requests)
        # vLLM returns internal ids (`<id>-<8 random chars>`), outputs carry the external one
        pending: dict[str, tuple[object, int, str]] = {}  # external id -> (key, n, internal)
        queued = 0  # samples in `pending`
        exhausted = False
        try:
            while True:
                while not exhausted and queued < budget:
                    item = next(todo, None)
                    if item is None:
                        exhausted = True
                        break
                    key, conv, n = item
                    params = SamplingParams(n=n, temperature=cfg.temperature, top_p=cfg.top_p,
                                            max_tokens=cfg.max_tokens)
                    (rid,) = self.llm.enqueue_chat([conv], [params], use_tqdm=False)
                    pending[rid.rsplit("-", 1)[0]] = (key, n, rid)
                    queued += n
                if not pending:
                    return
                for out in engine.step():
                    if out.finished and out.request_id in pending:
                        key, n, _ = pending.pop(out.request_id)
                        queued -= n
                        yield key, [Completion(o.text, len(o.token_ids), o.finish_reason)
                                    for o in out.outputs]
        finally:
            if pending:  # closed early or failed: a shared engine must not keep them
                engine.abort_request([rid for *_, rid in pending.values()], internal=True)

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None and hasattr(llm, "llm_engine"):
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
        self.llm = None
        if self.private_tmp:
            import shutil

            shutil.rmtree(self.private_tmp, ignore_errors=True)
            for k in ("TMPDIR", "VLLM_RPC_BASE_PATH"):  # the next engine makes its own
                if os.environ.get(k) == self.private_tmp:
                    del os.environ[k]
            self.private_tmp = None


class OpenAIEngine:
    """Any OpenAI-compatible server (vllm serve, SGLang, TGI): bounded concurrency, retries."""

    name = "openai"

    def __init__(self, cfg: GenerateConfig):
        if not cfg.base_url:
            raise EngineError("the openai engine needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        self.cfg = cfg
        self.urls = [u.rstrip("/") for u in cfg.base_url]
        # vLLM serves a folder under its path unless --served-model-name says otherwise.
        self.served_model = cfg.served_model or cfg.model
        self.tokenizer = None
        if Path(cfg.model).is_dir():  # count tokens per choice exactly, as vLLM does
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(cfg.model)

    async def _post(self, client, idx: int, payload: dict) -> dict:
        import httpx

        delay = 1.0
        for attempt in range(self.cfg.retries + 1):
            url = self.urls[(idx + attempt) % len(self.urls)] + "/chat/completions"
            try:
                r = await client.post(url, json=payload)
                if r.status_code < 400:
                    return r.json()
                if r.status_code not in (408, 409, 429) and r.status_code < 500:
                    raise EngineError(f"{url}: HTTP {r.status_code}: {r.text[:200]}")
                err = f"HTTP {r.status_code}"
            except (httpx.TransportError, httpx.TimeoutException) as e:
                err = f"{type(e).__name__}: {e}"
            if attempt == self.cfg.retries:
                raise EngineError(f"{url}: gave up after {attempt + 1} tries ({err})")
            await asyncio.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    async def _one(self, client, sem, idx: int, messages: list[dict], n: int,
                   cfg: GenerateConfig) -> list[Completion]:
        out: list[Completion] = []
        while len(out) < n:  # servers may cap n; ask again for the rest
            payload = {"model": self.served_model, "messages": messages, "n": n - len(out),
                       "temperature": cfg.temperature, "top_p": cfg.top_p,
                       "max_tokens": cfg.max_tokens, "return_token_ids": True}
            async with sem:
                data = await self._post(client, idx, payload)
            choices = data.get("choices") or []
            if not choices:
                raise EngineError(f"server returned no choices for prompt {idx}")
            usage = data.get("usage") or {}
            for c in choices:
                text = (c.get("message") or {}).get("content") or ""
                if c.get("token_ids") is not None:  # vLLM's extension: the exact count
                    ntok = len(c["token_ids"])
                elif len(choices) == 1 and usage.get("completion_tokens") is not None:
                    ntok = usage["completion_tokens"]
                elif self.tokenizer is not None:  # re-encoding may differ by a few tokens
                    ntok = len(self.tokenizer(text, add_special_tokens=False).input_ids)
                else:
                    ntok = None
                out.append(Completion(text, ntok, c.get("finish_reason")))
        return out[:n]

    def generate(self, conversations: list[list[dict]], ns: list[int],
                 cfg: GenerateConfig | None = None) -> list[list[Completion]]:
        return collect(self, conversations, ns, cfg)

    def stream(self, requests: Iterable[tuple[object, list[dict], int]],
               cfg: GenerateConfig | None = None) -> Iterator[tuple[object, list[Completion]]]:
        """(key, conversation, n) in, (key, n completions) out as each prompt finishes.

        `concurrency` requests stay in flight across shards (twice as many prompts are
        queued on the semaphore, so a finished request is replaced at once); prompt i goes
        to server i mod len(base_url), its retries to the next servers.
        """
        import httpx

        cfg = cfg or self.cfg
        loop = asyncio.new_event_loop()
        sem = asyncio.Semaphore(self.cfg.concurrency)
        headers = {"Authorization": f"Bearer {self.cfg.api_key}"}
        client = httpx.AsyncClient(timeout=self.cfg.timeout, headers=headers)
        todo = iter(requests)
        tasks: dict[asyncio.Task, object] = {}
        i = 0
        try:
            while True:
                while len(tasks) < 2 * self.cfg.concurrency:
                    item = next(todo, None)
                    if item is None:
                        break
                    key, conv, n = item
                    tasks[loop.create_task(self._one(client, sem, i, conv, n, cfg))] = key
                    i += 1
                if not tasks:
                    return
                done, _ = loop.run_until_complete(
                    asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED))
                for t in done:
                    yield tasks.pop(t), t.result()
        finally:
            for t in tasks:
                t.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(client.aclose())
            loop.close()

    def close(self) -> None:
        pass


def collect(engine, conversations: list[list[dict]], ns: list[int],
            cfg: GenerateConfig | None = None) -> list[list[Completion]]:
    """All completions in input order: `stream` for callers that want one batch."""
    out: list[list[Completion] | None] = [None] * len(conversations)
    for i, comps in engine.stream(((i, c, n) for i, (c, n)
                                   in enumerate(zip(conversations, ns, strict=True))), cfg):
        out[i] = comps
    return out  # type: ignore[return-value]


def make_engine(cfg: GenerateConfig):
    return {"vllm": VllmEngine, "openai": OpenAIEngine}[cfg.engine](cfg)
