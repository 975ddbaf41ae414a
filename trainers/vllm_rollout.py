"""GRPO rollouts from a colocated vLLM engine, as TRL's GRPOTrainer with vllm_mode="colocate":
the engine lives in the trainer's process and its weights are reloaded from the policy before
every rollout, so samples always come from the current policy.

The engine core runs in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0), so weights are handed over
as tensors, not serialised. Under torchrun each process has its own engine (vLLM's
external_launcher executor, as TRL) generating its own prompts. On CPU, vLLM binds the process's
OpenMP threads to its cores (VLLM_CPU_OMP_THREADS_BIND; here each process gets its share of the
cores): torch.set_num_threads has no effect after the engine starts.

Sleep mode (GPU): the engine is started with enable_sleep_mode and put to sleep (level 1: weights
offloaded to CPU, KV cache freed) while the policy is updated, so the update gets the memory
back; it wakes before the next weight load. vLLM-CPU has no sleep mode (the platform reports it
unavailable and `enable_sleep_mode=True` is refused), so on CPU sleep/wake are no-ops and
`sleep_mode` says why.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def _relink_tied_lm_head(model) -> None:
    """vLLM-CPU packs lm_head's weight for its GEMM when loading; a layerwise reload re-processes
    only embed_tokens, so a tied lm_head would keep the old packed copy: repack it."""
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm
    from vllm.platforms import current_platform

    lm_head, embed = getattr(model, "lm_head", None), getattr(model, "model", None)
    embed = getattr(embed, "embed_tokens", None)
    if (current_platform.is_cpu() and lm_head is not None and embed is not None
            and lm_head.weight.data_ptr() == embed.weight.data_ptr()):
        dispatch_cpu_unquantized_gemm(lm_head, remove_weight=False)


class VllmRollout:
    """One vllm.LLM over the policy's folder; `load` pushes new weights, `sample` rolls out."""

    def __init__(self, model_dir: str, *, seed: int, max_model_len: int, bf16: bool,
                 world: int = 1, gpu_memory_utilization: float = 0.3):
        from r1data.config import GenerateConfig
        from r1data.engines import VllmEngine, has_gpu

        self.saved_env = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # in-process: weights reachable
        from vllm.platforms import current_platform

        extra = {}
        if current_platform.is_sleep_mode_available():
            extra["enable_sleep_mode"] = True
            self.sleep_mode = "on"
        else:  # vLLM-CPU: enable_sleep_mode=True would be refused at engine start
            self.sleep_mode = f"off: vLLM on {current_platform.device_type} has no sleep mode"
        self.asleep = False
        if world > 1:  # torchrun: one independent engine per process, as TRL's colocate mode
            extra["distributed_executor_backend"] = "external_launcher"
            if not has_gpu() and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
                cpus = sorted(os.sched_getaffinity(0))  # this process's share of the cores
                local, n = int(os.environ["LOCAL_RANK"]), int(os.environ["LOCAL_WORLD_SIZE"])
                mine = cpus[local * len(cpus) // n:(local + 1) * len(cpus) // n] or cpus
                os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, mine))
        # fp32 like the policy, so the rollout log-probs are the policy's (bf16 with cfg.bf16)
        gen = GenerateConfig(model=model_dir, seed=seed, max_model_len=max_model_len,
                             dtype="bfloat16" if bf16 else "float32",
                             gpu_memory_utilization=gpu_memory_utilization)
        self.engine = VllmEngine(gen, **extra)
        self.llm = self.engine.llm

    def sleep(self) -> None:
        """Give the GPU memory back for the update (level 1: weights to CPU, KV cache freed)."""
        if self.sleep_mode == "on" and not self.asleep:
            self.llm.reset_prefix_cache()
            self.llm.sleep(level=1)
            self.asleep = True

    def wake_up(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def load(self, named_params: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Weights in HF names (q/k/v and gate/up are fused by vLLM's loader); prefix cache
        cleared, since cached KV blocks were computed with the old weights."""
        self.wake_up()
        weights = [(name, p.detach()) for name, p in named_params]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights,
                                                          "is_checkpoint_format": True})
        self.llm.apply_model(_relink_tied_lm_head)
        self.llm.reset_prefix_cache()

    def sample_outputs(self, prompt_ids: list[list[int]], *, n: int, seeds: list[int],
                       max_new: int, temperature: float, top_p: float
                       ) -> list[tuple[list[int], str]]:
        """n completions per prompt, prompt-major: (token ids, with EOS when one was sampled;
        vLLM's finish_reason, "length" when max_new was hit, else "stop"). One seed per prompt:
        a prompt's samples do not depend on the batch it is in."""
        from vllm import SamplingParams

        params = [SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_new,
                                 seed=s) for s in seeds]
        outs = self.llm.generate([{"prompt_token_ids": p} for p in prompt_ids], params,
                                 use_tqdm=False)
        return [(list(o.token_ids), o.finish_reason or "stop")
                for out in outs for o in out.outputs]

    def sample(self, prompt_ids: list[list[int]], **kw) -> list[list[int]]:
        """The token ids of sample_outputs."""
        return [ids for ids, _ in self.sample_outputs(prompt_ids, **kw)]

    def close(self) -> None:
        self.engine.close()
        os.environ.pop("VLLM_ENABLE_V1_MULTIPROCESSING")
        if self.saved_env is not None:  # other engines in this process run as configured
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = self.saved_env
