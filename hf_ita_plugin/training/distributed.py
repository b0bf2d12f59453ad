"""Multi-process training: launching ``accelerate``, and knowing which process this one is.

``hf-ita train CONFIG --num-processes N`` runs the same command again under ``accelerate launch``
(torchrun underneath) with N processes: one per GPU, or N CPU processes talking over gloo. A run
started by ``accelerate launch -m hf_ita_plugin.cli train CONFIG`` takes the same path.
Inside the run, :func:`setup` joins the process group before anything heavy happens;
:func:`is_main` tells the one process that writes the output folder, evaluates and pushes;
:func:`trainer_arguments` turns the ``distributed`` config section into TrainingArguments (DDP, or
FSDP with the settings peft documents for FSDP-QLoRA).

Example::

    hf-ita train examples/smollm2-135m-cpu.yaml --num-processes 2
"""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
from typing import Any

from ..config import RunConfig
from ..errors import ConfigError, bilingual

BARRIER_TIMEOUT = datetime.timedelta(hours=3)
"""How long the other processes wait for the main one (it evaluates alone before and after training)."""


# ---------------------------------------------------------------------------------- who am I
def world_size() -> int:
    """Number of processes in this run (1 when not launched by accelerate/torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    """This process's global rank (0 for a single-process run)."""
    return int(os.environ.get("RANK", "0") or 0)


def local_rank() -> int:
    """This process's rank on its machine: its GPU index."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_distributed() -> bool:
    return world_size() > 1


def is_main() -> bool:
    """Whether this process writes outputs, evaluates and pushes (rank 0)."""
    return rank() == 0


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


# ---------------------------------------------------------------------------------- checks
def check_plan(config: RunConfig, num_processes: int, *, gpus: int | None = None) -> None:
    """Raise :class:`ConfigError` when ``num_processes`` processes cannot run ``config`` on this machine
    (``gpus``: how many GPUs it has; default: those torch sees)."""
    gpus = _gpu_count() if gpus is None else gpus
    where = "--num-processes"
    if num_processes < 1:
        raise ConfigError(bilingual("--num-processes deve essere almeno 1", f"--num-processes must be at least 1, got "
                                    f"{num_processes}", where=where))
    strategy = config.distributed.strategy
    if gpus == 0:
        if strategy == "fsdp":
            raise ConfigError(bilingual("distributed.strategy fsdp richiede GPU: su CPU usa ddp",
                                        "distributed.strategy fsdp needs GPUs (bitsandbytes 4-bit shards and NCCL); "
                                        "this machine has none", where="distributed.strategy"),
                              hint="on CPU use distributed.strategy: ddp (gloo)")
        cores = os.cpu_count() or 1
        if num_processes > cores:
            raise ConfigError(bilingual(f"{num_processes} processi su {cores} core CPU",
                                        f"{num_processes} processes on {cores} CPU cores: each needs at least one",
                                        where=where), hint=f"use --num-processes {cores} or fewer")
        return
    if num_processes > gpus:
        raise ConfigError(bilingual(f"{num_processes} processi ma solo {gpus} GPU",
                                    f"{num_processes} processes but this machine has {gpus} GPU(s): one process per GPU",
                                    where=where), hint=f"use --num-processes {gpus} or fewer")
    if strategy == "fsdp" and num_processes > 1 and config.evaluation.before_after:
        raise ConfigError(bilingual("FSDP: nessun processo ha il modello intero per la valutazione prima/dopo",
                                    "FSDP: no process holds the whole model for the before/after evaluation",
                                    where="evaluation.before_after"),
                          hint="set evaluation.before_after: false and score the adapter afterwards with `hf-ita eval`")
    q = config.quantization
    if strategy == "fsdp" and q.mode != "none" and q.quant_storage not in ("auto", _compute_dtype_name(config)):
        raise ConfigError(bilingual(f"FSDP: quantization.quant_storage {q.quant_storage} diverso dal compute dtype "
                                    f"{_compute_dtype_name(config)}",
                                    f"FSDP: quantization.quant_storage {q.quant_storage} is not the compute dtype "
                                    f"{_compute_dtype_name(config)} on this machine", where="quantization.quant_storage"),
                          hint="set quantization.quant_storage: auto")


def _compute_dtype_name(config: RunConfig) -> str:
    from ..models.loader import resolve_compute_dtype

    return str(resolve_compute_dtype(config.quantization.compute_dtype, training=True)).removeprefix("torch.")


def quant_storage(config: RunConfig) -> str | None:
    """The dtype the 4-bit weights are stored in: the compute dtype under FSDP (``auto``), else as configured
    (``None``: bitsandbytes' uint8)."""
    name = config.quantization.quant_storage
    if name == "auto":
        return _compute_dtype_name(config) if config.distributed.strategy == "fsdp" else None
    return name


# ---------------------------------------------------------------------------------- launching
def launch_command(argv: list[str], num_processes: int) -> tuple[list[str], dict[str, str]]:
    """``accelerate launch`` of ``python -m hf_ita_plugin.cli ARGV`` with ``num_processes`` processes, and its
    environment (on a CPU: gloo, and the cores split between the processes)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
           "--num_machines", "1", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
           "-m", "hf_ita_plugin.cli", *argv]
    env = dict(os.environ)
    if _gpu_count() == 0:
        env["ACCELERATE_USE_CPU"] = "true"  # accelerate then joins the processes over gloo
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // num_processes)))
    return cmd, env


def launch(argv: list[str], num_processes: int) -> int:
    """Run ``hf-ita ARGV`` in ``num_processes`` processes under ``accelerate launch``; its exit status."""
    cmd, env = launch_command(argv, num_processes)
    print(f"hf-ita: {num_processes} processes ({'GPU' if _gpu_count() else 'CPU, gloo'}): accelerate launch "
          f"--num_processes {num_processes} -m hf_ita_plugin.cli {' '.join(argv)}", flush=True)
    return subprocess.run(cmd, env=env, check=False).returncode


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------- inside the run
def setup(config: RunConfig) -> None:
    """Join the process group of a multi-process run (no-op for one process), before the model loads.

    Checks the plan against this machine, pins this process to its GPU and, for FSDP, sets the
    environment transformers reads at load time (rank 0 loads the weights, the others wait for
    their shards: ``cpu_ram_efficient_loading``).
    """
    if not is_distributed():
        return
    check_plan(config, world_size())
    gpu = _gpu_count() > 0
    if not gpu:
        os.environ["ACCELERATE_USE_CPU"] = "true"
    if config.distributed.strategy == "fsdp":
        os.environ["ACCELERATE_USE_FSDP"] = "true"
        os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] = "true"
    if gpu:
        import torch

        torch.cuda.set_device(local_rank())
    from accelerate import PartialState

    PartialState(cpu=not gpu, timeout=BARRIER_TIMEOUT)


def barrier() -> None:
    """Wait for every process (no-op for one process)."""
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every process (a picklable object)."""
    if not is_distributed():
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def global_batch(config: RunConfig, processes: int | None = None) -> int:
    """Sequences per optimizer step: per-device batch x processes x gradient accumulation."""
    t = config.training
    return t.per_device_batch_size * (processes or world_size()) * t.gradient_accumulation_steps


def batch_line(config: RunConfig, processes: int | None = None) -> str:
    """The one line a run prints about its batch."""
    t, n = config.training, processes or world_size()
    return (f"hf-ita: global batch {global_batch(config, n)} sequences = {t.per_device_batch_size} per device x {n} "
            f"process(es) x {t.gradient_accumulation_steps} gradient accumulation"
            + (f" ({config.distributed.strategy})" if n > 1 else ""))


def trainer_arguments(config: RunConfig) -> dict[str, Any]:
    """Extra ``TrainingArguments`` for a multi-process run; empty for one process.

    DDP, or FSDP with the settings peft documents for FSDP-QLoRA: FSDP1 (``version: 1``) with
    ``use_orig_params=False`` (trainable LoRA and frozen base weights wrapped apart by peft's auto-wrap
    policy, which transformers sets for a peft model), ``cpu_ram_efficient_loading`` and
    ``sync_module_states`` (rank 0 loads, the others receive their shards). CPU offload stays off.
    """
    if not is_distributed():
        return {}
    args: dict[str, Any] = {"ddp_find_unused_parameters": False, "use_cpu": _gpu_count() == 0}
    d = config.distributed
    if d.strategy == "fsdp":
        args["fsdp"] = True
        args["fsdp_config"] = {
            "version": 1,
            "reshard_after_forward": d.fsdp_sharding,  # FSDP1: the sharding strategy's name
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "cpu_ram_efficient_loading": True,
            "sync_module_states": True,
            "use_orig_params": False,
            "activation_checkpointing": d.activation_checkpointing,
            "state_dict_type": "SHARDED_STATE_DICT",
        }
    return args


def uses_fsdp(config: RunConfig) -> bool:
    return is_distributed() and config.distributed.strategy == "fsdp"


def full_state_dict(trainer):
    """Under FSDP, the whole model's state dict gathered on rank 0 (every process must call this);
    ``None`` otherwise (the main process saves its own copy of the adapter)."""
    if not getattr(trainer, "is_fsdp_enabled", False):
        return None
    trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    return trainer.accelerator.get_state_dict(trainer.model)
