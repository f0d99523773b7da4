"""Training on several processes (torchrun, DDP over gloo), rank 0 the only writer.

    torchrun --nproc_per_node 2 -m studio distill student.pt --data d.yaml --epochs 10 --out out/kd
    studio distill student.pt ... --nproc 2                 # the same, launched for you

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them everything here is a no-op and
training runs in one process as before. Each rank reads its own share of the data
(DistributedSampler), DistributedDataParallel averages the model's gradients, the
gradients of extra trainable modules (distillation adapters) are averaged by hand, and
only rank 0 reports progress, validates and writes checkpoints and state; a resumed run
reads the state on rank 0 and hands it to the others (for distill and train the other
machines need no copy of the output folder; prune, QAT and compress load models rank 0
wrote, so there it must be shared).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def launched() -> bool:
    """Whether torchrun started this process (it sets WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ


def context() -> Dist:
    """The process group this process belongs to (started on first use), or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        # gloo: the studio's loop trains on CPUs (GPU runs: studio train --devices). The long timeout lets the
        # other ranks wait while rank 0 alone validates, calibrates or prunes (minutes to hours on a CPU).
        dist.init_process_group("gloo", timeout=timedelta(hours=int(os.environ.get("STUDIO_DIST_TIMEOUT_H", "12"))))
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def is_main() -> bool:
    """Whether this process may write files and report (rank 0, or not distributed)."""
    return int(os.environ.get("RANK", "0")) == 0


def wrap(model: nn.Module, ctx: Dist, find_unused: bool = False) -> nn.Module:
    """The module to call for the forward pass: DDP around the model when distributed, else the model.

    find_unused: some parameters may not take part in a step (a fake-quantized model's export-only grids)."""
    if not ctx.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    # (on the CPU: no device_ids; DDP broadcasts rank 0's weights as it is built)
    return DistributedDataParallel(model, find_unused_parameters=find_unused)


def quiet(job, ctx: Dist):
    """The job for this rank: rank 0 reports; the others keep only the cancel token."""
    from studio.core.jobs import Job

    return job if ctx.main or job is None else Job(cancel=job.cancel)


def broadcast_module(module: nn.Module | None, ctx: Dist) -> None:
    """Give every rank rank 0's parameters and buffers of a module outside DDP (adapters start random)."""
    if module is None or not ctx.active:
        return
    import torch.distributed as dist

    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def average_gradients(module: nn.Module | None, ctx: Dist) -> None:
    """Average the gradients of parameters outside the DDP model (adapters) over all ranks."""
    if module is None or not ctx.active:
        return
    import torch.distributed as dist

    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= ctx.world


def share_from_main(obj, ctx: Dist):
    """Rank 0's object on every rank (the resume state, the run's decisions)."""
    if not ctx.active:
        return obj
    import torch.distributed as dist

    box = [obj if ctx.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: Dist) -> None:
    if ctx.active:
        import torch.distributed as dist

        dist.barrier()


def on_main(ctx: Dist, work: Callable[..., object], *args):
    """Run work(*args) on rank 0 alone while the other ranks wait for it; its result, or None off rank 0.
    Without torchrun this is a plain call."""
    result = work(*args) if ctx.main else None
    barrier(ctx)
    return result


def launch(nproc: int, argv: list[str]) -> None:
    """Become torchrun running this same `studio` command with nproc processes on this machine.

    exec, not a child: Ctrl-C and SIGTERM reach torchrun itself, which stops its workers. Each
    process gets an even share of the cores unless OMP_NUM_THREADS says otherwise."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "studio", *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, env)
