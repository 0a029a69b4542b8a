"""The training loop: one GAN configuration, trained and measured. Usable without Ray.

Read `train()` top to bottom: update D (d_steps times), then G, each under a comment naming its
objective (pytorch/examples dcgan). Everything else — statistics, divergence checks, reports,
checkpoints — happens at chunk boundaries so the hot loop never waits on a device sync.

Example:
    >>> from trainers.presets import get_preset
    >>> summary = train(get_preset("smoke"), "/tmp/smoke-trial")  # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import random
import resource
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torchvision.utils as vutils

from trainers import metric_keys as K
from trainers.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from trainers.config import TrialConfig
from trainers.divergence import DivergenceDetector, sample_diversity
from trainers.losses import GanLoss
from trainers.models import build_discriminator, build_generator, count_parameters
from trainers.optimizers import build_optimizers
from trainers.run_stats import RunningMoments, T0Tracker

Reporter = Callable[[dict, Optional[Path]], None]

METRICS_FILE = "metrics.jsonl"  # one line per report
ITERATIONS_FILE = "iterations.csv"  # one line per iteration: the raw per-step signals
SUMMARY_FILE = "summary.json"
SAMPLES_DIR = "samples"
ITERATION_COLUMNS = ("iteration", K.LOSS_D, K.LOSS_G, K.D_X, K.D_G_Z, K.GRAD_NORM_D, K.GRAD_NORM_G)


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present, so the same config runs on a laptop and a GPU node."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from trainers.errors import ConfigError

        raise ConfigError("device='cuda' but no CUDA device is visible; use device='auto' or 'cpu'")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def train(
    cfg: TrialConfig,
    out_dir: str | Path,
    *,
    reporter: Reporter | None = None,
    resume: bool = True,
    resume_from: str | Path | None = None,
    train_set: Any = None,
    evaluator: Any = None,
) -> dict:
    """Train one configuration; call `reporter(metrics, checkpoint_dir)` at every report.

    Args:
        cfg: the validated trial config.
        out_dir: where samples, metrics.jsonl, iterations.csv, summary.json and the checkpoint go.
        reporter: called with the report's metrics (keys from `trainers.metric_keys`) and the
            checkpoint directory when a checkpoint was written at this report (else None).
        resume: continue from `out_dir/checkpoint/checkpoint.pt` when it exists.
        resume_from: an explicit checkpoint file or directory to continue from (Ray restores).
        train_set: a preloaded `ImageSet` (else loaded from cfg.data through the on-disk cache).
        evaluator: a `trainers.evaluation.Evaluator` (else built when cfg asks for evaluation).
    Returns:
        The last report's metrics (status finished or diverged).
    """
    out_dir = Path(out_dir)
    (out_dir / SAMPLES_DIR).mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    fid_every = cfg.fid_cadence(device.type)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    gen = seed_everything(cfg.seed)

    if train_set is None:
        from trainers.data import load_split

        train_set = load_split(
            cfg.data, "train", cfg.resolution, hist_eq=cfg.hist_eq, class_subset=cfg.class_subset,
            limit=cfg.data_limit, seed=cfg.seed,
        )
    # The whole split lives on the device as uint8: the data path costs one index + one scale per batch.
    images = torch.from_numpy(np.ascontiguousarray(train_set.images)).to(device).unsqueeze(1)
    labels = torch.as_tensor(train_set.labels, dtype=torch.long).to(device)
    n_images = images.shape[0]
    if n_images < 1:
        from trainers.errors import DataError

        raise DataError(f"training split of {cfg.data!r} is empty after class_subset/limit")
    conditional = cfg.conditioning != "none"

    G = build_generator(cfg).to(device)
    D = build_discriminator(cfg).to(device)
    opt_g, opt_d = build_optimizers(cfg, G, D)
    loss_fn = GanLoss(cfg)
    fixed_z = torch.randn(cfg.sample_grid, cfg.latent_dim, generator=gen).to(device)
    fixed_y = (torch.arange(cfg.sample_grid) % cfg.num_classes).to(device) if conditional else None

    d_moments, g_moments = RunningMoments(), RunningMoments()
    with torch.no_grad():
        chance = float(loss_fn.d_loss(torch.zeros(4), torch.zeros(4)))
    t0 = T0Tracker(chance=chance)
    detector = DivergenceDetector(
        window=cfg.divergence_window, factor=cfg.divergence_factor,
        collapse_threshold=cfg.collapse_threshold, enabled=cfg.detect_divergence,
    )
    state = {"step": 0, "perm": torch.randperm(n_images, generator=gen), "pos": 0, "wall_s": 0.0,
             "reports": 0, "status": K.STATUS_RUNNING, "reason": "", "last_metrics": {}}

    ckpt_file = Path(resume_from) if resume_from else checkpoint_path(out_dir)
    if ckpt_file.is_dir():
        ckpt_file = ckpt_file / "checkpoint.pt"
    if (resume or resume_from) and ckpt_file.is_file():
        ck = load_checkpoint(ckpt_file, map_location=device)
        G.load_state_dict(ck["generator"])
        D.load_state_dict(ck["discriminator"])
        opt_g.load_state_dict(ck["opt_g"])
        opt_d.load_state_dict(ck["opt_d"])
        gen.set_state(ck["gen_state"])
        torch.set_rng_state(ck["torch_rng"])
        fixed_z = ck["fixed_z"].to(device)
        d_moments.load_state_dict(ck["d_moments"])
        g_moments.load_state_dict(ck["g_moments"])
        t0.load_state_dict(ck["t0"])
        detector.load_state_dict(ck["detector"])
        state.update({k: ck["loop"][k] for k in ("step", "pos", "wall_s", "reports", "status", "reason")})
        state["perm"] = ck["perm"]
        state["last_metrics"] = json.loads(ck["last_metrics"])
        _truncate_logs(out_dir, state["step"])
        if state["status"] != K.STATUS_RUNNING:
            return state["last_metrics"]  # the run had already ended; resuming is a no-op
    else:
        _truncate_logs(out_dir, 0)

    params = {K.PARAMS_G: count_parameters(G), K.PARAMS_D: count_parameters(D)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if (cfg.amp and device.type == "cuda") else _null()
    B = cfg.batch_size
    chunk = max(1, min(cfg.report_every, cfg.divergence_window))

    def next_real() -> tuple[torch.Tensor, torch.Tensor]:
        # Draw without replacement from a seeded permutation; a new epoch reshuffles.
        if state["pos"] + B > n_images:
            state["perm"] = torch.randperm(n_images, generator=gen)
            state["pos"] = 0
        idx = state["perm"][state["pos"]: state["pos"] + B].to(device)
        state["pos"] += B
        x = images.index_select(0, idx).float().div_(127.5).sub_(1.0)
        return x, labels.index_select(0, idx)

    def noise(n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = torch.randn(n, cfg.latent_dim, generator=gen).to(device)
        y = torch.randint(0, cfg.num_classes, (n,), generator=gen).to(device) if conditional else None
        return z, y

    # Per-iteration signals accumulate on the device; one sync per chunk.
    buf = torch.zeros(chunk, len(ITERATION_COLUMNS) - 1, device=device)
    interval: list[np.ndarray] = []
    G.train()
    D.train()
    t_start = time.perf_counter()
    train_time = 0.0
    images_seen = 0

    while state["step"] < cfg.iterations and state["status"] == K.STATUS_RUNNING:
        n_chunk = min(chunk, cfg.iterations - state["step"], cfg.report_every - state["step"] % cfg.report_every)
        t_chunk = time.perf_counter()
        for i in range(n_chunk):
            # (1) Update D: maximise log D(x) + log(1 - D(G(z))) (or the configured objective)
            for _ in range(cfg.d_steps):
                real, y_real = next_real()
                z, y_fake = noise(B)
                with amp:
                    fake = G(z, y_fake)
                    real_logits, real_cls = D(real, y_real if conditional else None)
                    fake_logits, fake_cls = D(fake.detach(), y_fake)
                    loss_d = loss_fn.d_loss(real_logits.float(), fake_logits.float())
                    if real_cls is not None:
                        loss_d = loss_d + cfg.aux_weight * (
                            loss_fn.aux_loss(real_cls.float(), y_real) + loss_fn.aux_loss(fake_cls.float(), y_fake)
                        )
                if cfg.loss == "wgan_gp":
                    loss_d = loss_d + loss_fn.gradient_penalty(D, real, fake.detach(), y_real if conditional else None)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                gn_d = _grad_norm(D)
                opt_d.step()
            # (2) Update G: make D call G(z) real (non-saturating unless configured otherwise)
            with amp:
                gen_logits, gen_cls = D(fake, y_fake)
                loss_g = loss_fn.g_loss(gen_logits.float())
                if gen_cls is not None:
                    loss_g = loss_g + cfg.aux_weight * loss_fn.aux_loss(gen_cls.float(), y_fake)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            gn_g = _grad_norm(G)
            opt_g.step()
            with torch.no_grad():
                buf[i, 0] = loss_d.detach()
                buf[i, 1] = loss_g.detach()
                buf[i, 2] = loss_fn.score(real_logits.detach().float()).mean()
                buf[i, 3] = loss_fn.score(fake_logits.detach().float()).mean()
                buf[i, 4] = gn_d
                buf[i, 5] = gn_g
        rows = buf[:n_chunk].cpu().numpy().astype(np.float64)  # the chunk's only sync
        dt = time.perf_counter() - t_chunk
        train_time += dt
        images_seen += n_chunk * cfg.d_steps * B
        first = state["step"] + 1
        state["step"] += n_chunk
        steps = np.arange(first, state["step"] + 1, dtype=np.float64)[:, None]
        interval.append(np.hstack([steps, rows]))
        _append_iterations(out_dir, np.hstack([steps, rows]))
        d_moments.update(rows[:, 0])
        g_moments.update(rows[:, 1])
        t0.update(rows[:, 0])
        reason = detector.check_losses(rows[:, 0], rows[:, 1])
        if reason:
            state["status"], state["reason"] = K.STATUS_DIVERGED, reason

        is_report = state["step"] % cfg.report_every == 0 or state["step"] >= cfg.iterations or reason
        if not is_report:
            continue
        # ---- report: statistics, samples, evaluation, checkpoint
        state["reports"] += 1
        ended = state["step"] >= cfg.iterations or state["status"] != K.STATUS_RUNNING
        block = np.vstack(interval)
        interval = []
        samples = _sample(G, fixed_z, fixed_y)
        sample_file = out_dir / SAMPLES_DIR / f"step_{state['step']:07d}.png"
        vutils.save_image(samples, sample_file, normalize=True, value_range=(-1, 1), nrow=int(math.sqrt(len(samples))) or 1)
        if state["status"] == K.STATUS_RUNNING:
            reason = detector.check_samples(samples)
            if reason:
                state["status"], state["reason"] = K.STATUS_DIVERGED, reason
                ended = True
        if ended and state["status"] == K.STATUS_RUNNING:
            state["status"] = K.STATUS_FINISHED
        metrics = {
            K.ITERATION: state["step"],
            K.EPOCH: state["step"] * cfg.d_steps * B / n_images,
            K.LOSS_D: float(block[:, 1].mean()), K.LOSS_G: float(block[:, 2].mean()),
            K.D_X: float(block[:, 3].mean()), K.D_G_Z: float(block[:, 4].mean()),
            K.GRAD_NORM_D: float(block[:, 5].mean()), K.GRAD_NORM_G: float(block[:, 6].mean()),
            K.D_LOSS_MEAN: d_moments.mean, K.D_LOSS_VAR: d_moments.variance, K.D_LOSS_STD: d_moments.std,
            K.G_LOSS_MEAN: g_moments.mean, K.T0: t0.value(final=ended), K.T0_CENSORED: t0.censored and ended,
            K.IMAGES_PER_S: images_seen / train_time if train_time > 0 else math.nan,
            K.PEAK_MEMORY_MB: _peak_memory_mb(device), **params,
            K.WALL_S: state["wall_s"] + time.perf_counter() - t_start,
            K.STATUS: state["status"], K.REASON: state["reason"],
            K.SAMPLE_PATH: str(sample_file), K.SAMPLE_DIVERSITY: sample_diversity(samples),
        }
        images_seen, train_time = 0, 0.0
        wants_eval = (fid_every and state["reports"] % fid_every == 0) or (ended and cfg.eval_at_end)
        if wants_eval or (ended and cfg.downstream_protocols):
            evaluator = evaluator or _build_evaluator(cfg, train_set, device)
            if wants_eval:
                metrics.update(evaluator.evaluate(G))
            if ended and cfg.downstream_protocols and state["status"] == K.STATUS_FINISHED:
                metrics.update(evaluator.downstream(G))
            G.train()
        state["wall_s"] += time.perf_counter() - t_start
        t_start = time.perf_counter()
        metrics[K.WALL_S] = state["wall_s"]
        state["last_metrics"] = metrics
        _append_jsonl(out_dir / METRICS_FILE, metrics)

        ckpt_dir = None
        if ended or (cfg.checkpoint_every and state["reports"] % cfg.checkpoint_every == 0):
            ckpt = checkpoint_path(out_dir)
            save_checkpoint(
                {
                    "config": cfg.to_dict(), "generator": G.state_dict(), "discriminator": D.state_dict(),
                    "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                    "gen_state": gen.get_state(), "torch_rng": torch.get_rng_state(),
                    "fixed_z": fixed_z.cpu(), "perm": state["perm"],
                    "d_moments": d_moments.state_dict(), "g_moments": g_moments.state_dict(),
                    "t0": t0.state_dict(), "detector": detector.state_dict(),
                    "loop": {k: state[k] for k in ("step", "pos", "wall_s", "reports", "status", "reason")},
                    "last_metrics": json.dumps(metrics, default=_json_default),
                },
                ckpt,
            )
            ckpt_dir = ckpt.parent
        if reporter is not None:
            reporter(metrics, ckpt_dir)

    (out_dir / SUMMARY_FILE).write_text(json.dumps(state["last_metrics"], indent=2, default=_json_default))
    return state["last_metrics"]


# ----------------------------------------------------------------------------------------
@torch.no_grad()
def _sample(G: torch.nn.Module, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    G.eval()
    out = G(z, y).float().cpu()
    G.train()
    return out


def _grad_norm(module: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads, norm_type=2.0).detach()


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _build_evaluator(cfg: TrialConfig, train_set: Any, device: torch.device) -> Any:
    from trainers.evaluation import Evaluator

    return Evaluator(cfg, train_set, device=device)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record, default=_json_default) + "\n")
        f.flush()


def _append_iterations(out_dir: Path, rows: np.ndarray) -> None:
    path = out_dir / ITERATIONS_FILE
    new = not path.exists()
    with open(path, "a") as f:
        if new:
            f.write(",".join(ITERATION_COLUMNS) + "\n")
        np.savetxt(f, rows, delimiter=",", fmt=["%d"] + ["%.8g"] * (rows.shape[1] - 1))


def _truncate_logs(out_dir: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from, so a resumed run logs each step once."""
    metrics, iters = out_dir / METRICS_FILE, out_dir / ITERATIONS_FILE
    if step == 0:
        metrics.unlink(missing_ok=True)
        iters.unlink(missing_ok=True)
        return
    if metrics.exists():
        kept = [ln for ln in metrics.read_text().splitlines() if ln and json.loads(ln)[K.ITERATION] <= step]
        metrics.write_text("".join(ln + "\n" for ln in kept))
    if iters.exists():
        lines = iters.read_text().splitlines()
        kept = lines[:1] + [ln for ln in lines[1:] if int(ln.split(",", 1)[0]) <= step]
        iters.write_text("".join(ln + "\n" for ln in kept))


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return False
