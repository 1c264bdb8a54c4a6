"""The training loop of the neural expert (the seed record's recipe), data-parallel with torch.distributed.

One optimizer step: every process runs its micro-batches (gradient accumulation), gradients are
averaged across processes with one all-reduce, clipped, and applied by Muon (2-D block matrices) and
AdamW (embedding tables, control tensors and other vectors). The LR scale warms up linearly, stays
at 1, then decays linearly to 0 over the last ``warmdown_iters`` steps, measured in steps or, under
a wall-clock cap, in the time those steps take. Once the scale drops below ``late_qat_threshold``,
late QAT and the CROWN-Q penalty switch on. At the end the EMA weights are applied, Hessians for
GPTQ are collected on training sequences, and the int5 artifact is written.

Gradients are averaged with an explicit all-reduce rather than the DistributedDataParallel wrapper:
the arithmetic is the same, it composes with the per-layer fake quantization, and it makes a run on
W processes reproduce a 1-process run with the same global batch.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..artifact import CONTROL_PATTERNS, export_artifact, save_checkpoint
from .crownq import LateQAT
from .data import BatchPlan, load_train_tokens
from .ema import EMA
from ..gptq import collect_hessians
from .muon import Muon
from .options import TrainConfig


def setup_distributed():
    """(rank, world_size, device): joins torchrun's process group (NCCL on CUDA, gloo on CPU)."""
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return rank, world, device


def build_model(model_config: dict):
    """The one GPT definition of pgolf_neural, from a config dict (unknown keys are errors)."""
    from ..config import GPTConfig
    from ..model import GPT

    return GPT(GPTConfig.from_dict(model_config))


def logits_of(model, ids):
    out = model(ids)
    return out[0] if isinstance(out, tuple) else out


def param_groups(model, cfg: TrainConfig, device) -> list:
    """Muon for 2-D matrices, AdamW for embedding tables (tied_embed_lr) and for the rest (scalar_lr)."""
    embed_ids = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    matrices, tables, scalars = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in embed_ids:
            tables.append(p)
        elif p.ndim == 2 and not any(c in name for c in CONTROL_PATTERNS):
            matrices.append(p)
        else:
            scalars.append(p)
    ns_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    opts = [Muon(matrices, lr=cfg.matrix_lr, momentum=cfg.muon_momentum, backend_steps=cfg.muon_backend_steps,
                 weight_decay=cfg.muon_wd, ns_dtype=ns_dtype)] if matrices else []
    adam = [{"params": tables, "lr": cfg.tied_embed_lr}, {"params": scalars, "lr": cfg.scalar_lr}]
    opts.append(torch.optim.AdamW([g for g in adam if g["params"]], betas=(cfg.beta1, cfg.beta2),
                                  eps=cfg.adam_eps, weight_decay=cfg.adam_wd))
    for opt in opts:
        for g in opt.param_groups:
            g["base_lr"] = g["lr"]
    return opts


def lr_scale(cfg: TrainConfig, step: int, elapsed: float, budget: float | None) -> tuple[float, float]:
    """(LR scale, warmdown factor): linear warmup, then 1, then linear warmdown to 0 (by steps, or by
    wall clock under a cap). Late QAT keys on the warmdown factor alone, never on the warmup."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.warmdown_iters <= 0:
        down = 1.0
    elif budget is None:
        down = min(1.0, max(cfg.iterations - step, 0) / cfg.warmdown_iters)
    else:
        step_time = elapsed / max(step, 1)
        down = min(1.0, max(budget - elapsed, 0.0) / max(cfg.warmdown_iters * step_time, 1e-9))
    return warm * down, down


def average_gradients(params, world: int) -> None:
    """One flat all-reduce of every gradient, divided by the process count."""
    if world == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    i = 0
    for g in grads:
        g.copy_(flat[i : i + g.numel()].view_as(g))
        i += g.numel()


class RunLog:
    """JSON-lines training log (rank 0) and progress lines on stderr."""

    def __init__(self, path, rank: int, quiet: bool = False):
        self.rank, self.quiet = rank, quiet
        self.f = open(path, "w") if (path and rank == 0) else None

    def event(self, kind: str, **data) -> None:
        if self.f:
            self.f.write(json.dumps({"event": kind, **data}) + "\n")
            self.f.flush()

    def say(self, msg: str) -> None:
        if self.rank == 0 and not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def close(self):
        if self.f:
            self.f.close()


def versions() -> dict:
    import pgolf_core

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "pgolf_core": getattr(pgolf_core, "__version__", "?")}


def _micro_loss(model, batch, device, qat: LateQAT, cfg: TrainConfig):
    ids = torch.from_numpy(batch).to(device)
    x, y = ids[:, :-1], ids[:, 1:]
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits = logits_of(model, x)
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
    total = loss
    if qat.enabled and cfg.crown_q_lambda > 0 and qat.layers:
        total = loss + cfg.crown_q_lambda / 12.0 * qat.penalty()
    return loss, total


def train_step(model, opts, plan: BatchPlan, step: int, rank: int, world: int, device, qat, cfg, scale, params):
    """One optimizer step; returns the global mean cross-entropy of the step's batch."""
    frac = min(step / cfg.muon_momentum_warmup_steps, 1.0) if cfg.muon_momentum_warmup_steps > 0 else 1.0
    for opt in opts:
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * scale
            if isinstance(opt, Muon):
                g["momentum"] = (1 - frac) * cfg.muon_momentum_warmup_start + frac * cfg.muon_momentum
    for p in params:
        p.grad = None
    loss_sum = torch.zeros((), dtype=torch.float64)
    for micro in range(plan.accum_steps):
        loss, total = _micro_loss(model, plan.micro_batch(step, rank, micro), device, qat, cfg)
        (total / plan.accum_steps).backward()
        loss_sum += loss.detach().double().cpu()
    average_gradients(params, world)
    if cfg.grad_clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip_norm)
    for opt in opts:
        opt.step()
    loss_mean = loss_sum / plan.accum_steps
    if world > 1:
        t = loss_mean.to(device=device, dtype=torch.float64 if device.type != "mps" else torch.float32)
        dist.all_reduce(t)
        loss_mean = t.cpu() / world
    return float(loss_mean)


def _stop_now(reached: bool, world: int, device) -> bool:
    if world == 1:
        return reached
    flag = torch.tensor([int(reached)], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def run_training(data, out_dir, cfg: TrainConfig, model_config: dict, log_name: str = "train_log.jsonl",
                 quiet: bool = False, tokenizer: dict | None = None) -> dict:
    """Train, apply EMA, export. Returns a summary (losses, timings, artifact statistics).
    ``tokenizer`` (``artifact.tokenizer_record``) is written into the checkpoint and the artifact."""
    rank, world, device = setup_distributed()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    out = Path(out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    log = RunLog(out / log_name, rank, quiet)
    tokens = load_train_tokens(data, int(model_config.get("vocab_size", 1024)))
    model = build_model(model_config).to(device)
    plan = BatchPlan(tokens, cfg.train_seq_len, cfg.train_batch_tokens // cfg.train_seq_len, world, cfg.micro_batch_seqs)
    params = [p for p in model.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    log.event("config", train=cfg.to_dict(), model=model_config, data=str(data), tokenizer=tokenizer, world_size=world,
              accum_steps=plan.accum_steps, train_tokens=int(len(tokens)), parameters=n_params, versions=versions())
    log.say(f"train: {n_params:,} parameters, {world} process(es) x {plan.accum_steps} micro-steps of "
            f"{cfg.micro_batch_seqs} x {cfg.train_seq_len} tokens, {len(tokens):,} training tokens")
    opts = param_groups(model, cfg, device)
    qat = LateQAT(model)
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    budget = (cfg.max_wallclock_seconds - cfg.wallclock_reserve_seconds) if cfg.max_wallclock_seconds > 0 else None
    losses, t0, step = [], time.perf_counter(), 0
    model.train()
    while step < cfg.iterations:
        elapsed = time.perf_counter() - t0
        scale, down = lr_scale(cfg, step, elapsed, budget)
        if 0 < cfg.late_qat_threshold and down < cfg.late_qat_threshold and not qat.enabled:
            qat.enable()
            log.event("late_qat", step=step, lr_scale=scale)
            log.say(f"step {step}: late QAT and CROWN-Q (lambda {cfg.crown_q_lambda}) on, LR scale {scale:.3f}")
        loss = train_step(model, opts, plan, step, rank, world, device, qat, cfg, scale, params)
        if ema is not None:
            ema.update(model)
        step += 1
        elapsed = time.perf_counter() - t0
        losses.append(loss)
        log.event("step", step=step, loss=loss, lr_scale=scale, qat=qat.enabled, seconds=round(elapsed, 3))
        if step % cfg.log_every == 0 or step == 1 or step == cfg.iterations:
            log.say(f"step {step}/{cfg.iterations} loss {loss:.4f} lr_scale {scale:.3f} {elapsed:.0f}s")
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} at step {step}")
        if _stop_now(budget is not None and elapsed >= budget, world, device):
            log.say(f"stopping at step {step}: wall-clock cap of {cfg.max_wallclock_seconds}s (reserve excluded)")
            break
    train_seconds = time.perf_counter() - t0
    qat.disable()
    if ema is not None:
        ema.apply_to(model)
    summary = {"steps": step, "losses": losses, "train_seconds": train_seconds, "parameters": n_params,
               "world_size": world}
    if rank == 0:
        summary.update(_finish(model, plan, cfg, model_config, out, log, tokenizer))
    log.event("done", **{k: v for k, v in summary.items() if k != "losses"})
    log.close()
    if world > 1:
        dist.barrier()
    return summary


def _finish(model, plan: BatchPlan, cfg: TrainConfig, model_config: dict, out: Path, log: RunLog,
            tokenizer: dict | None = None) -> dict:
    """Rank 0: fp32 checkpoint, GPTQ Hessians on training sequences, pruned int5 artifact."""
    t0 = time.perf_counter()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_checkpoint(out / "final_model.pt", state, model_config, tokenizer)
    hessians = None
    if cfg.gptq_batches > 0:
        device = next(model.parameters()).device
        rows = plan.sequences(0, cfg.gptq_batches)[:, :-1]
        batches = (torch.from_numpy(rows[i : i + 8]).to(device) for i in range(0, len(rows), 8))
        layers = {n for n, _ in LateQAT(model).layers}
        hessians = collect_hessians(_LogitsOnly(model), batches, names={"model." + n for n in layers})
        hessians = {k[len("model."):]: v for k, v in hessians.items()}
    stats = export_artifact(out / "final_model.int5.ptz", state, model_config, hessians=hessians, prune=cfg.prune_pct,
                            tokenizer=tokenizer)
    stats["export_seconds"] = time.perf_counter() - t0
    log.say(f"artifact {stats['path']}: {stats['compressed_bytes']:,} bytes compressed + {stats['code_bytes']:,} "
            f"code = {stats['submission_bytes']:,} / {stats['limit_bytes']:,} "
            f"({'fits' if stats['fits'] else 'OVER'}); {stats['gptq_tensors']} GPTQ matrices")
    log.event("artifact", **stats)
    return {"artifact": stats, "checkpoint": str(out / "final_model.pt")}


class _LogitsOnly(torch.nn.Module):
    """Wraps the model so ``module(ids)`` runs its forward (for the Hessian hooks)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids):
        return logits_of(self.model, ids)
