"""The training loop: one GAN configuration, trained and measured. Usable without Ray.

`gan_step()` is one iteration on one screen: update D (d_steps times), then G, each under a comment
naming its objective (pytorch/examples dcgan). `TrainingState` saves and loads everything a run needs
to continue exactly. `train()` runs the steps; everything else — statistics, divergence checks, reports,
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
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torchvision.utils as vutils

from trainers import metric_keys as K
from trainers.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from trainers.config import TrialConfig
from trainers.divergence import DivergenceDetector, sample_diversity
from trainers.layout import CHECKPOINT_FILENAME, ITERATIONS_FILE, METRICS_FILE, SAMPLES_DIR, SUMMARY_FILE
from trainers.levers import Levers
from trainers.levers.signals import DAccuracy, heldout_split
from trainers.losses import GanLoss
from trainers.models import build_discriminator, build_generator, count_parameters
from trainers.optimizers import build_optimizers
from trainers.run_stats import RunningMoments, T0Tracker

Reporter = Callable[[dict, Optional[Path]], None]


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


def signal_columns(cfg: TrialConfig) -> tuple[str, ...]:
    """Per-iteration signals of a config (iterations.csv after `iteration`): aux/GP only where they exist."""
    cols = (K.LOSS_D, K.LOSS_G, K.D_X, K.D_G_Z, K.GRAD_NORM_D, K.GRAD_NORM_G)
    if cfg.conditioning == "acgan":
        cols += (K.AUX_LOSS_D, K.AUX_LOSS_G)
    if cfg.loss == "wgan_gp":
        cols += (K.GRADIENT_PENALTY,)
    return cols


class Batches:
    """Real batches drawn without replacement from a seeded permutation, and latent/label draws.

    Everything lives on the training device: the split as uint8, the permutation, and the random draws
    (from `device_gen`, the loop's CPU generator on CPU and a seeded CUDA generator on CUDA), so nothing
    crosses PCIe inside the loop and no draw waits on the host.
    """

    def __init__(self, train_set: Any, cfg: TrialConfig, gen: torch.Generator, device: torch.device):
        with warnings.catch_warnings():
            # The split is the node's shared read-only memmap: on CPU the tensor maps it (no copy) and is
            # only ever read (index_select); on CUDA .to() copies it to the device once.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            images = torch.from_numpy(np.ascontiguousarray(train_set.images))
        self.images = images.to(device).unsqueeze(1)
        self.labels = torch.as_tensor(train_set.labels, dtype=torch.long).to(device)
        self.n = self.images.shape[0]
        self.cfg, self.device = cfg, device
        self.gen = gen if device.type == "cpu" else torch.Generator(device=device).manual_seed(cfg.seed)
        self.conditional = cfg.conditioning != "none"
        self.perm = torch.randperm(self.n, generator=self.gen, device=device)
        self.pos = 0

    def real(self) -> tuple[torch.Tensor, torch.Tensor]:
        B = self.cfg.batch_size
        if self.pos + B > self.n:  # a new epoch reshuffles
            self.perm = torch.randperm(self.n, generator=self.gen, device=self.device)
            self.pos = 0
        idx = self.perm[self.pos: self.pos + B]
        self.pos += B
        return self.images.index_select(0, idx).float().div_(127.5).sub_(1.0), self.labels.index_select(0, idx)

    def noise(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        cfg = self.cfg
        z = torch.randn(cfg.batch_size, cfg.latent_dim, generator=self.gen, device=self.device)
        y = (torch.randint(0, cfg.num_classes, (cfg.batch_size,), generator=self.gen, device=self.device)
             if self.conditional else None)
        return z, y


def gan_step(G: torch.nn.Module, D: torch.nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
             loss_fn: GanLoss, batches: Batches, cfg: TrialConfig, amp: Any,
             levers: Levers | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One iteration: cfg.d_steps D updates, then one G update (pytorch/examples dcgan).

    `levers` (trainers/levers) are the config's anti-overfitting levers, each visible below and each the
    identity (augmentation) or zero (regulariser) when off: DiffAugment/ADA on what D sees, R1, LeCam and
    bCR in D's loss, the G EMA after G's update. Returns device tensors, never synced here: per D step
    (d_steps, 6) = adversarial D loss, aux class loss, gradient penalty, D(x), D(G(z)), |grad D|; and the
    G step (3,) = adversarial G loss, aux class loss, |grad G|. The adversarial parts are what the D-loss
    statistics and T0 describe; r_t goes to `levers` (reported by the loop).
    """
    lv = levers if levers is not None else Levers(cfg, G, loss_fn.decision_threshold(), batches.gen, batches.device)
    cond = batches.conditional
    zero = torch.zeros((), device=batches.device)
    d_rows = []
    for _ in range(cfg.d_steps):
        # (1) Update D: maximise log D(x) + log(1 - D(G(z))) (or the configured objective) on its
        #     (augmented) inputs, minus the enabled regularisers R1, LeCam and bCR
        real, y_real = batches.real()
        z, y_fake = batches.noise()
        with amp:
            fake = G(z, y_fake)
            real_in, fake_in = lv.augment_pair(real, fake.detach())  # DiffAugment/ADA: one draw for both
            real_in.requires_grad_(lv.r1_due)  # R1 differentiates D(x) with respect to x
            real_logits, real_cls = D(real_in, y_real if cond else None)
            fake_logits, fake_cls = D(fake_in, y_fake)
            adv_d = loss_fn.d_loss(real_logits.float(), fake_logits.float())
            aux_d = (loss_fn.aux_loss(real_cls.float(), y_real) + loss_fn.aux_loss(fake_cls.float(), y_fake)
                     if real_cls is not None else zero)
        loss_d = adv_d + cfg.aux_weight * aux_d if real_cls is not None else adv_d
        gp = loss_fn.gradient_penalty(D, real_in, fake_in, y_real if cond else None)
        if cfg.loss == "wgan_gp":
            loss_d = loss_d + gp
        loss_d = (loss_d + lv.r1(real_in, real_logits) + lv.lecam(real_logits.float(), fake_logits.float())
                  + lv.bcr(D, real_in, fake_in, real_logits.float(), fake_logits.float(),
                           y_real if cond else None, y_fake))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        gn_d = _grad_norm(D)
        opt_d.step()
        lv.observe(real_logits.float())  # r_t of this step (reported; ADA adapts p from it)
        with torch.no_grad():
            d_rows.append(torch.stack([adv_d.detach(), aux_d.detach(), gp.detach(),
                                       loss_fn.score(real_logits.detach().float()).mean(),
                                       loss_fn.score(fake_logits.detach().float()).mean(), gn_d]))
    # (2) Update G: make D call G(z) real (non-saturating unless configured otherwise), through the same
    #     augmentation D was trained on (fresh draw), so G's gradient passes through it
    with amp:
        gen_logits, gen_cls = D(lv.augment(fake), y_fake)
        adv_g = loss_fn.g_loss(gen_logits.float())
        aux_g = loss_fn.aux_loss(gen_cls.float(), y_fake) if gen_cls is not None else zero
    loss_g = adv_g + cfg.aux_weight * aux_g if gen_cls is not None else adv_g
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    gn_g = _grad_norm(G)
    opt_g.step()
    lv.update_ema(G)  # the G EMA (apply_g_ema): the generator FID, TSTR and generate use
    return torch.stack(d_rows), torch.stack([adv_g.detach(), aux_g.detach(), gn_g])


class TrainingState:
    """Everything a run needs to continue exactly, saved and loaded by one paired piece of code."""

    LOOP_KEYS = ("step", "wall_s", "reports", "status", "reason")

    def __init__(self, cfg: TrialConfig, G: torch.nn.Module, D: torch.nn.Module, opt_g: Any, opt_d: Any,
                 gen: torch.Generator, batches: Batches, fixed_z: torch.Tensor, chance: float, levers: Levers):
        self.cfg, self.G, self.D, self.opt_g, self.opt_d = cfg, G, D, opt_g, opt_d
        self.gen, self.batches, self.fixed_z, self.levers = gen, batches, fixed_z, levers
        self.d_moments, self.g_moments = RunningMoments(), RunningMoments()
        self.rt_moments, self.margin_moments = RunningMoments(), RunningMoments()  # r_t, D(x) - D(G(z))
        self.t0 = T0Tracker(chance=chance)
        self.detector = DivergenceDetector(
            window=cfg.divergence_window, factor=cfg.divergence_factor,
            collapse_threshold=cfg.collapse_threshold, enabled=cfg.detect_divergence,
        )
        self.step, self.wall_s, self.reports = 0, 0.0, 0
        self.status, self.reason = K.STATUS_RUNNING, ""
        self.last_metrics: dict = {}

    def state_dict(self) -> dict:
        ema = self.levers.ema
        return {
            # "generator" is the one to sample from (what generate/tstr/yardstick load): the EMA when it is on,
            # with G's training weights beside it as "generator_train".
            "config": self.cfg.to_dict(), "generator": (ema.module if ema else self.G).state_dict(),
            **({"generator_train": self.G.state_dict()} if ema else {}), "discriminator": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "gen_state": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
            "fixed_z": self.fixed_z.cpu(), "perm": self.batches.perm.cpu(), "pos": self.batches.pos,
            # On CUDA the batches draw from their own generator and the GP from the CUDA RNG.
            "device_gen_state": self.batches.gen.get_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.fixed_z.device) if self.fixed_z.is_cuda else torch.zeros(0),
            "d_moments": self.d_moments.state_dict(), "g_moments": self.g_moments.state_dict(),
            "t0": self.t0.state_dict(), "detector": self.detector.state_dict(),
            "levers": self.levers.state_dict(), "rt_moments": self.rt_moments.state_dict(),
            "margin_moments": self.margin_moments.state_dict(),
            "loop": {k: getattr(self, k) for k in self.LOOP_KEYS},
            "last_metrics": json.dumps(self.last_metrics, default=_json_default),
        }

    def load_state_dict(self, ck: dict) -> None:
        device = self.fixed_z.device
        self.G.load_state_dict(ck.get("generator_train", ck["generator"]))
        if self.levers.ema is not None:
            self.levers.ema.module.load_state_dict(ck["generator"])
        self.D.load_state_dict(ck["discriminator"])
        self.opt_g.load_state_dict(ck["opt_g"])
        self.opt_d.load_state_dict(ck["opt_d"])
        self.gen.set_state(ck["gen_state"])
        torch.set_rng_state(ck["torch_rng"])
        self.fixed_z = ck["fixed_z"].to(device)
        self.batches.perm, self.batches.pos = ck["perm"].to(device), int(ck["pos"])
        self.batches.gen.set_state(ck["device_gen_state"])
        if device.type == "cuda" and ck["cuda_rng"].numel():
            torch.cuda.set_rng_state(ck["cuda_rng"], device)
        self.d_moments.load_state_dict(ck["d_moments"])
        self.g_moments.load_state_dict(ck["g_moments"])
        self.t0.load_state_dict(ck["t0"])
        self.detector.load_state_dict(ck["detector"])
        if "levers" in ck:  # checkpoints written before the levers existed hold none of their state
            self.levers.load_state_dict(ck["levers"])
            self.rt_moments.load_state_dict(ck["rt_moments"])
            self.margin_moments.load_state_dict(ck["margin_moments"])
        for k in self.LOOP_KEYS:
            setattr(self, k, ck["loop"][k])
        self.last_metrics = json.loads(ck["last_metrics"])


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
        evaluator: a `trainers.evaluation.Evaluator` (else built when cfg asks for evaluation); its
            cache_dir also holds the downstream TRTR baseline.
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
        from trainers.data import load_split, task_options

        train_set = load_split(
            cfg.data, "train", cfg.resolution, hist_eq=cfg.hist_eq, class_subset=cfg.class_subset,
            limit=cfg.data_limit, seed=cfg.seed, **task_options(cfg),
        )
    if len(train_set) < 1:
        from trainers.errors import DataError

        raise DataError(f"training split of {cfg.data!r} is empty after class_subset/limit")
    batches = Batches(train_set, cfg, gen, device)
    G = build_generator(cfg).to(device)
    D = build_discriminator(cfg).to(device)
    opt_g, opt_d = build_optimizers(cfg, G, D)
    loss_fn = GanLoss(cfg)
    fixed_z = torch.randn(cfg.sample_grid, cfg.latent_dim, generator=gen).to(device)
    fixed_y = (torch.arange(cfg.sample_grid) % cfg.num_classes).to(device) if batches.conditional else None
    levers = Levers(cfg, G, loss_fn.decision_threshold(), batches.gen, device)
    st = TrainingState(cfg, G, D, opt_g, opt_d, gen, batches, fixed_z, loss_fn.chance_level(), levers)
    d_accuracy = (DAccuracy(train_set, heldout_split(cfg), cfg.d_acc_samples, cfg.seed, cfg.batch_size,
                            batches.conditional, device) if cfg.d_acc_samples else None)

    ckpt_file = Path(resume_from) if resume_from else checkpoint_path(out_dir)
    if ckpt_file.is_dir():
        ckpt_file = ckpt_file / CHECKPOINT_FILENAME
    if (resume or resume_from) and ckpt_file.is_file():
        st.load_state_dict(load_checkpoint(ckpt_file, map_location=device))
        _truncate_logs(out_dir, st.step)
        if st.status != K.STATUS_RUNNING:
            return st.last_metrics  # the run had already ended; resuming is a no-op
    else:
        _truncate_logs(out_dir, 0)

    params = {K.PARAMS_G: count_parameters(G), K.PARAMS_D: count_parameters(D)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if (cfg.amp and device.type == "cuda") else _null()
    B = cfg.batch_size
    chunk = cfg.report_every  # per-step signals stay on the device until the report: one host read each
    columns = signal_columns(cfg)
    extra = [{K.AUX_LOSS_D: 1, K.AUX_LOSS_G: 7, K.GRADIENT_PENALTY: 2}[c] for c in columns[6:]]

    # Per-step signals accumulate on the device; the host reads them once per report.
    d_buf = torch.zeros(chunk, cfg.d_steps, 6, device=device)
    g_buf = torch.zeros(chunk, 3, device=device)
    interval: list[np.ndarray] = []
    rt_interval: list[np.ndarray] = []  # r_t of every D step since the last report
    G.train()
    D.train()
    t_start = time.perf_counter()
    train_time = 0.0
    images_seen = 0

    while st.step < cfg.iterations and st.status == K.STATUS_RUNNING:
        n_chunk = min(chunk, cfg.iterations - st.step, cfg.report_every - st.step % cfg.report_every)
        t_chunk = time.perf_counter()
        for i in range(n_chunk):
            d_buf[i], g_buf[i] = gan_step(G, D, opt_g, opt_d, loss_fn, batches, cfg, amp, levers)
        d_steps = d_buf[:n_chunk].cpu().numpy().astype(np.float64)  # the chunk's only syncs
        g_steps = g_buf[:n_chunk].cpu().numpy().astype(np.float64)
        rt_steps = levers.drain_rt()
        dt = time.perf_counter() - t_chunk
        train_time += dt
        images_seen += n_chunk * cfg.d_steps * B
        d_iter = d_steps.mean(axis=1)  # an iteration's D signals: the mean over its D steps
        both = np.hstack([d_iter, g_steps])  # columns 0-5 D, 6-8 G
        rows = np.column_stack([both[:, 0], both[:, 6], both[:, 3], both[:, 4], both[:, 5], both[:, 8],
                                *[both[:, j] for j in extra]])
        first = st.step + 1
        st.step += n_chunk
        steps = np.arange(first, st.step + 1, dtype=np.float64)[:, None]
        interval.append(np.hstack([steps, rows]))
        _append_iterations(out_dir, np.hstack([steps, rows]), columns)
        st.d_moments.update(d_steps[:, :, 0].ravel())  # every D step's adversarial loss
        st.g_moments.update(rows[:, 1])
        st.t0.update(rows[:, 0])
        st.rt_moments.update(rt_steps)
        st.margin_moments.update((d_steps[:, :, 3] - d_steps[:, :, 4]).ravel())  # every D step's D(x) - D(G(z))
        rt_interval.append(rt_steps)
        reason = st.detector.check_losses(rows[:, 0], rows[:, 1])
        if reason:
            st.status, st.reason = K.STATUS_DIVERGED, reason

        is_report = st.step % cfg.report_every == 0 or st.step >= cfg.iterations or reason
        if not is_report:
            continue
        # ---- report: statistics, samples, evaluation, checkpoint
        st.reports += 1
        ended = st.step >= cfg.iterations or st.status != K.STATUS_RUNNING
        block = np.vstack(interval)
        rt_block = np.concatenate(rt_interval)
        interval, rt_interval = [], []
        samples = _sample(G, st.fixed_z, fixed_y)
        sample_file = out_dir / SAMPLES_DIR / f"step_{st.step:07d}.png"
        vutils.save_image(samples, sample_file, normalize=True, value_range=(-1, 1), nrow=int(math.sqrt(len(samples))) or 1)
        if st.status == K.STATUS_RUNNING:
            reason = st.detector.check_samples(samples)
            if reason:
                st.status, st.reason = K.STATUS_DIVERGED, reason
                ended = True
        if ended and st.status == K.STATUS_RUNNING:
            st.status = K.STATUS_FINISHED
        metrics = {
            K.ITERATION: st.step,
            K.EPOCH: st.step * cfg.d_steps * B / batches.n,
            **{name: float(block[:, j + 1].mean()) for j, name in enumerate(columns)},
            K.D_LOSS_MEAN: st.d_moments.mean, K.D_LOSS_VAR: st.d_moments.variance, K.D_LOSS_STD: st.d_moments.std,
            K.G_LOSS_MEAN: st.g_moments.mean, K.T0: st.t0.value(final=ended), K.T0_CENSORED: st.t0.censored and ended,
            K.IMAGES_PER_S: images_seen / train_time if train_time > 0 else math.nan,
            K.PEAK_MEMORY_MB: _peak_memory_mb(device), **params,
            K.WALL_S: st.wall_s + time.perf_counter() - t_start,
            K.STATUS: st.status, K.REASON: st.reason,
            K.SAMPLE_PATH: str(sample_file), K.SAMPLE_DIVERSITY: sample_diversity(samples),
            **_d_signals(st, rt_block, d_accuracy, loss_fn),
        }
        images_seen, train_time = 0, 0.0
        wants_eval = (fid_every and st.reports % fid_every == 0) or (ended and cfg.eval_at_end)
        if wants_eval or (ended and cfg.downstream_protocols):
            evaluator = evaluator or _build_evaluator(cfg, device)
            measured = levers.ema.module if levers.ema is not None else G  # apply_g_ema: the EMA generator
            metrics[K.EVAL_GENERATOR] = "ema" if levers.ema is not None else "g"
            if wants_eval:
                metrics.update(evaluator.evaluate(measured))
            if ended and cfg.downstream_protocols and st.status == K.STATUS_FINISHED:
                metrics.update(_downstream(cfg, measured, device, evaluator.cache_dir))
            G.train()
        st.wall_s += time.perf_counter() - t_start
        t_start = time.perf_counter()
        metrics[K.WALL_S] = st.wall_s
        st.last_metrics = metrics
        _append_jsonl(out_dir / METRICS_FILE, metrics)

        ckpt_dir = None
        if ended or (cfg.checkpoint_every and st.reports % cfg.checkpoint_every == 0):
            ckpt_dir = save_checkpoint(st.state_dict(), checkpoint_path(out_dir)).parent
        if reporter is not None:
            reporter(metrics, ckpt_dir)

    (out_dir / SUMMARY_FILE).write_text(json.dumps(st.last_metrics, indent=2, default=_json_default))
    return st.last_metrics


# ----------------------------------------------------------------------------------------
def _d_signals(st: TrainingState, rt_block: np.ndarray, d_accuracy: DAccuracy | None, loss_fn: GanLoss) -> dict:
    """The D signals of a report (trainers/levers/signals.py): r_t, D(x) - D(G(z)), D's accuracy, ADA's p."""
    acc_train, acc_heldout = (d_accuracy.measure(st.D, loss_fn.decision_threshold()) if d_accuracy is not None
                              else (math.nan, math.nan))
    out = {K.R_T: float(rt_block.mean()) if rt_block.size else math.nan, K.R_T_MEAN: st.rt_moments.mean,
           K.D_MARGIN_MEAN: st.margin_moments.mean, K.D_ACC_TRAIN: acc_train, K.D_ACC_HELDOUT: acc_heldout,
           K.D_ACC_GAP: acc_train - acc_heldout}
    if st.levers.ada is not None:
        out[K.ADA_P] = st.levers.ada_p
    return out


@torch.no_grad()
def _sample(G: torch.nn.Module, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    G.eval()
    out = G(z, y).float().cpu()
    G.train()
    return out


def _grad_norm(module: torch.nn.Module) -> torch.Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros((), device=next(module.parameters()).device)
    return torch.nn.utils.get_total_norm(grads, norm_type=2.0).detach()


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _build_evaluator(cfg: TrialConfig, device: torch.device) -> Any:
    from trainers.evaluation import Evaluator

    return Evaluator(cfg, device=device)  # the dataset's fixed yardstick, not this trial's split


def _downstream(cfg: TrialConfig, G: torch.nn.Module, device: torch.device, cache_dir: Path) -> dict:
    """TSTR / augmentation / TRTR baseline as configured by cfg.downstream, cached beside the evaluator's."""
    from trainers.evaluation.protocols import run_downstream  # classifiers: only trials with a protocol pay

    return run_downstream(cfg, G, device=device, cache_dir=cache_dir)


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


def _append_iterations(out_dir: Path, rows: np.ndarray, columns: tuple[str, ...]) -> None:
    path = out_dir / ITERATIONS_FILE
    new = not path.exists()
    with open(path, "a") as f:
        if new:
            f.write(",".join((K.ITERATION, *columns)) + "\n")
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
