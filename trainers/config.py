"""One flat, validated configuration per trial.

The same flat dict goes into the search space, the checkpoint and the results row
(nanoGPT style): every field is a plain value with a one-line comment on its default.
`TrialConfig.from_dict` rejects unknown keys and bad values with one sentence that
names the key and the allowed values, before any trial starts.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

RESOLUTIONS = (32, 64, 128, 256)
KERNEL_SIZES = (4, 5)
ACTIVATIONS = ("relu", "leaky_relu", "elu")
NORMS = ("batch", "layer", "instance", "spectral", "none")
UPSAMPLES = ("transpose", "upsample_conv")
OUTPUTS = ("tanh", "sigmoid")
CONDITIONINGS = ("none", "acgan", "cgan")
LOSSES = ("bce", "bce_minimax", "lsgan", "hinge", "wgan_gp")
OPTIMIZERS = ("adam", "adas", "sgd", "rmsprop")
DEVICES = ("auto", "cpu", "cuda")
GPU_FID_EVERY = 5  # fid_every=-1 (auto) on CUDA
EXTRACTORS = ("domain", "inception", "xrv")
DATA_UNCERTAIN = ("exclude", "positive", "negative")  # CheXpert-coded -1.0 labels (trainers/data/sheets/task.py)
DATA_VIEWS = ("frontal", "pa", "ap", "lateral", "all")  # frontal = PA or AP
INCEPTION_DIMS = (64, 192, 768, 2048)
DOWNSTREAM_PROTOCOLS = ("tstr", "augment")
CLASSIFIERS = ("small_cnn", "resnet18", "vgg16")
TSTR_VALIDATION = ("synthetic", "real")
# DiffAugment ops on 1-channel radiographs (trainers/levers/augment.py); no colour or saturation.
DIFFAUG_OPS = ("brightness", "contrast", "translation", "cutout", "flip")


from trainers.errors import ConfigError  # noqa: E402  (re-exported)


def is_ttur(lr_g: Any, lr_d: Any, d_steps: Any = 1) -> bool:
    """Two time-scale update rule: G and D learn at different rates or D steps more than once per G step.

    Takes plain values so a stored config dict (a journal row, maybe from an older version) uses the same rule.
    """
    return lr_g != lr_d or d_steps != 1


def fid_cadence(fid_every: int, device_type: str) -> int:
    """Reports between FID evaluations for a `fid_every` setting on a device (0 = only at the end).

    fid_every=-1 (auto) fits the device: a GPU evaluates every GPU_FID_EVERY reports, giving the
    within-trial D-loss/FID curves; on a CPU each evaluation costs seconds (domain extractor) to
    minutes (Inception), so only the end is evaluated. Values do not depend on the cadence.
    """
    if fid_every >= 0:
        return fid_every
    return GPU_FID_EVERY if device_type == "cuda" else 0


@dataclass
class TrialConfig:
    # --- identity
    name: str = "custom"  # preset or label, carried into results
    seed: int = 0  # seeds torch, numpy and python; same seed + config on CPU = same losses

    # --- data
    data: str = "phantom"  # phantom | pneumoniamnist | Kaggle tree | .npz | label-sheet folder (nih:ROOT...) | .csv
    resolution: int = 64  # image side in px; the block count follows from it
    hist_eq: bool = False  # histogram equalisation before scaling (seed 001)
    class_subset: str = ""  # "" = all classes, else one class name (e.g. NORMAL for minority augmentation)
    data_limit: int = 0  # 0 = whole training split; >0 keeps the first N (tests, smoke runs)
    data_task: str = "Pneumonia"  # label sheets: NORMAL = "No Finding", the other class = this finding
    data_uncertain: str = "exclude"  # CheXpert/MIMIC uncertain (-1.0) labels: exclude | positive | negative
    data_views: str = "frontal"  # label sheets: frontal (PA, AP) | pa | ap | lateral | all

    # --- models
    latent_dim: int = 100  # z size
    g_features: int = 64  # generator base feature maps (16..512)
    d_features: int = 64  # discriminator base feature maps (16..512)
    kernel_size: int = 4  # 4 or 5; shapes are exact either way
    g_activation: str = "relu"  # relu | leaky_relu | elu
    d_activation: str = "leaky_relu"
    leaky_slope: float = 0.2  # slope of leaky_relu wherever it is used
    g_norm: str = "batch"  # batch | layer | instance | spectral | none
    d_norm: str = "batch"  # applied to D's hidden layers only (DCGAN; seed 002's best)
    g_upsample: str = "transpose"  # transpose | upsample_conv (seed 004)
    g_output: str = "tanh"  # tanh | sigmoid (sigmoid output is rescaled to [-1, 1])
    conditioning: str = "none"  # none | acgan (aux classifier, seed 000) | cgan (label-conditioned)
    num_classes: int = 2  # NORMAL, PNEUMONIA

    # --- objective and optimisation
    loss: str = "bce"  # bce (non-saturating) | bce_minimax | lsgan (least squares on raw D output) | hinge | wgan_gp
    gp_weight: float = 10.0  # WGAN-GP gradient penalty weight
    optimizer: str = "adam"  # adam | adas | sgd | rmsprop, for both networks
    lr_g: float = 2e-4  # generator learning rate (TTUR: differs from lr_d)
    lr_d: float = 2e-4  # discriminator learning rate
    beta1: float = 0.5  # Adam beta1 (DCGAN)
    beta2: float = 0.999  # Adam beta2
    momentum: float = 0.9  # SGD momentum / RMSprop momentum
    weight_decay: float = 0.0
    d_steps: int = 1  # discriminator steps per generator step
    batch_size: int = 64
    iterations: int = 2000  # generator steps in the whole run
    aux_weight: float = 1.0  # ACGAN auxiliary classification loss weight

    # --- reporting and checkpoints
    report_every: int = 100  # generator steps between reports
    checkpoint_every: int = 1  # reports between checkpoints (0 = only at the end)
    sample_grid: int = 64  # images in the fixed-latent sample grid PNG

    # --- divergence detection
    detect_divergence: bool = True
    divergence_window: int = 50  # steps in the moving windows compared for an exponential rise
    divergence_factor: float = 20.0  # both losses rising this many times over the window = diverged
    collapse_threshold: float = 0.05  # across/within-sample std of the sample grid below this = mode collapse

    # --- evaluation (FID etc.); 0 disables
    # Reports between FID/KID evaluations; 0 = only at the end (eval_at_end); -1 = auto: every
    # GPU_FID_EVERY reports on CUDA (seconds each), only at the end on CPU (see fid_cadence).
    fid_every: int = -1
    eval_at_end: bool = True  # FID/KID/precision/recall at the end of training
    eval_samples: int = 1024  # N synthetic and N real images per FID; stored with every value
    extractor: str = "domain"  # domain (chest-X-ray CNN, offline) | inception (pt_inception-2015-12-05) | xrv
    inception_dims: int = 2048  # 64 | 192 | 768 | 2048
    allow_low_n: bool = False  # permit FID with N below the feature dimension
    downstream: str = ""  # comma list of tstr, augment ("" = none)
    classifier: str = "small_cnn"  # small_cnn | resnet18 | vgg16
    tstr_samples: int = 2000  # synthetic labelled images for TSTR
    tstr_validation: str = "synthetic"  # synthetic (seed 000) | real
    augment_samples: int = 2000  # synthetic minority-class images added (seed 001)
    classifier_epochs: int = 8
    classifier_patience: int = 2  # early stopping (seed 000)
    # Fits per downstream measurement, averaged (classifier seeds seed, seed+1000, ...): one fit's test
    # accuracy moves by several points with its initial weights alone.
    classifier_repeats: int = 1

    # --- levers against D overfitting (trainers/levers/), each off by default; StudioGAN's key names
    apply_g_ema: bool = False  # sample/evaluate an exponential moving average of G's weights (FID, TSTR, generate)
    g_ema_decay: float = 0.999  # EMA weight of the old average per G step (~1,000-step window)
    g_ema_start: int = 1000  # G steps before which the EMA is a plain copy of G (early weights never enter it)
    apply_diffaug: bool = False  # DiffAugment (Zhao et al. 2020): augment real and fake before D, in D and G steps
    diffaug_type: str = "brightness,contrast,translation,cutout"  # DiffAugment ops; flip is opt-in (CXRs have a side)
    apply_ada: bool = False  # ADA (Karras et al. 2020): augment with probability p adapted from r_t
    ada_target: float = 0.6  # r_t = E[sign D(x)] that ADA steers towards
    ada_kimg: int = 500  # thousand images for p to move by 1 (the published rate)
    ada_interval: int = 4  # D steps between adjustments of p
    apply_r1_reg: bool = False  # R1 gradient penalty on real images (Mescheder et al. 2018)
    r1_lambda: float = 10.0  # gamma in gamma/2 * E[||grad_x D(x)||^2]
    r1_interval: int = 1  # lazy R1: every k-th D step, weighted by k (StyleGAN2); 1 = every step
    apply_lecam: bool = False  # LeCam regulariser (Tseng et al. 2021)
    lecam_lambda: float = 0.3  # weight of R_LC
    lecam_ema_decay: float = 0.99  # decay of the EMAs of D(x) and D(G(z)) the regulariser pulls towards
    apply_bcr: bool = False  # balanced consistency regularisation (Zhao et al. 2021): D(T(x)) ~ D(x), real and fake
    bcr_real_lambda: float = 10.0  # weight of ||D(x) - D(T(x))||^2 (bcr_fake_lambda=0 is CR, Zhang et al. 2020)
    bcr_fake_lambda: float = 10.0  # weight of ||D(G(z)) - D(T(G(z)))||^2
    d_acc_samples: int = 256  # real images (training and held-out each) for D's accuracy at reports; 0 = skip

    # --- device
    device: str = "auto"  # auto = cuda when present
    amp: bool = False  # bf16/fp16 autocast on CUDA only
    num_threads: int = 0  # torch CPU threads (0 = torch default)

    # ------------------------------------------------------------------
    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key and its allowed values."""
        _choice("resolution", self.resolution, RESOLUTIONS)
        _choice("kernel_size", self.kernel_size, KERNEL_SIZES)
        _choice("g_activation", self.g_activation, ACTIVATIONS)
        _choice("d_activation", self.d_activation, ACTIVATIONS)
        _choice("g_norm", self.g_norm, NORMS)
        _choice("d_norm", self.d_norm, NORMS)
        _choice("g_upsample", self.g_upsample, UPSAMPLES)
        _choice("g_output", self.g_output, OUTPUTS)
        _choice("conditioning", self.conditioning, CONDITIONINGS)
        _choice("loss", self.loss, LOSSES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("device", self.device, DEVICES)
        _choice("extractor", self.extractor, EXTRACTORS)
        _choice("data_uncertain", self.data_uncertain, DATA_UNCERTAIN)
        _choice("data_views", self.data_views, DATA_VIEWS)
        if not self.data_task.strip() or self.data_task.strip().lower() == "no finding":
            raise ConfigError(f"data_task={self.data_task!r} must name a finding (e.g. Pneumonia, Effusion, "
                              "Cardiomegaly); 'No Finding' is the NORMAL class")
        _choice("inception_dims", self.inception_dims, INCEPTION_DIMS)
        _choice("classifier", self.classifier, CLASSIFIERS)
        _choice("tstr_validation", self.tstr_validation, TSTR_VALIDATION)
        for proto in self.downstream_protocols:
            _choice("downstream", proto, DOWNSTREAM_PROTOCOLS)
        _range("g_features", self.g_features, 16, 512)
        _range("d_features", self.d_features, 16, 512)
        _range("latent_dim", self.latent_dim, 1, 4096)
        _range("classifier_repeats", self.classifier_repeats, 1, 100)
        _range("num_classes", self.num_classes, 2, 100)
        _range("batch_size", self.batch_size, 1, 65536)
        _range("iterations", self.iterations, 1, 10**9)
        _range("report_every", self.report_every, 1, 10**9)
        _range("d_steps", self.d_steps, 1, 100)
        _range("checkpoint_every", self.checkpoint_every, 0, 10**9)
        _range("fid_every", self.fid_every, -1, 10**9)
        _range("eval_samples", self.eval_samples, 2, 10**7)
        _range("data_limit", self.data_limit, 0, 10**9)
        _range("sample_grid", self.sample_grid, 1, 1024)
        for key in ("lr_g", "lr_d"):
            _range(key, getattr(self, key), 1e-9, 10.0)
        _range("beta1", self.beta1, 0.0, 0.9999)
        _range("beta2", self.beta2, 0.0, 0.99999)
        _range("leaky_slope", self.leaky_slope, 0.0, 1.0)
        if self.conditioning != "none" and self.class_subset:
            raise ConfigError(
                f"conditioning={self.conditioning!r} needs every class, but class_subset={self.class_subset!r}; "
                "use conditioning='none' with a class subset"
            )
        if "tstr" in self.downstream_protocols and self.conditioning == "none":
            raise ConfigError(
                "downstream='tstr' needs labelled synthetic images: set conditioning to 'acgan' or 'cgan'"
            )
        if "augment" in self.downstream_protocols and self.conditioning == "none" and not self.class_subset:
            raise ConfigError(
                "downstream='augment' adds synthetic minority-class images: an unconditional generator needs "
                "class_subset set to the minority class (e.g. 'NORMAL'), or set conditioning to 'acgan' or 'cgan'"
            )
        self._validate_levers()
        if self.loss == "wgan_gp" and self.d_norm == "batch":
            raise ConfigError(
                "loss='wgan_gp' is incompatible with d_norm='batch' (the gradient penalty is per sample); "
                f"allowed d_norm: {[n for n in NORMS if n != 'batch']}"
            )

    def _validate_levers(self) -> None:
        ops = [op.strip() for op in self.diffaug_type.split(",")]
        for op in ops:
            _choice("diffaug_type", op, DIFFAUG_OPS)
        if len(set(ops)) != len(ops):
            raise ConfigError(f"diffaug_type={self.diffaug_type!r} names an op twice; allowed values: "
                              f"{', '.join(DIFFAUG_OPS)} (comma-separated, each once)")
        if self.apply_diffaug and self.apply_ada:
            raise ConfigError("apply_diffaug and apply_ada both augment D's inputs; allowed: one of them on")
        _range("g_ema_decay", self.g_ema_decay, 0.0, 0.999999)
        _range("g_ema_start", self.g_ema_start, 0, 10**9)
        _range("ada_target", self.ada_target, 0.0, 1.0)
        _range("ada_kimg", self.ada_kimg, 1, 10**6)
        _range("ada_interval", self.ada_interval, 1, 10**6)
        _range("r1_lambda", self.r1_lambda, 0.0, 1e6)
        _range("r1_interval", self.r1_interval, 1, 10**6)
        _range("lecam_lambda", self.lecam_lambda, 0.0, 1e6)
        _range("lecam_ema_decay", self.lecam_ema_decay, 0.0, 0.999999)
        _range("bcr_real_lambda", self.bcr_real_lambda, 0.0, 1e6)
        _range("bcr_fake_lambda", self.bcr_fake_lambda, 0.0, 1e6)
        _range("d_acc_samples", self.d_acc_samples, 0, 100_000)

    # ------------------------------------------------------------------
    @property
    def downstream_protocols(self) -> list[str]:
        return [p.strip() for p in self.downstream.split(",") if p.strip()]

    def fid_cadence(self, device_type: str) -> int:
        """Reports between FID evaluations on this device (0 = only at the end); see `fid_cadence`."""
        return fid_cadence(self.fid_every, device_type)

    @property
    def ttur(self) -> bool:
        """Two time-scale update rule (`is_ttur`)."""
        return is_ttur(self.lr_g, self.lr_d, self.d_steps)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrialConfig":
        """Build from a flat dict; unknown keys and wrong types are rejected by name."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"Unknown config key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
        coerced = {k: _coerce(k, v, known[k].type, known[k].default) for k, v in values.items()}
        return cls(**coerced)

    def replace(self, **changes: Any) -> "TrialConfig":
        merged = self.to_dict()
        merged.update(changes)
        return TrialConfig.from_dict(merged)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> TrialConfig:
    """Read a JSON or YAML trial config file (flat keys), apply overrides, validate."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    text = p.read_text()
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            values = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - any parse error becomes one user line
        raise ConfigError(f"config file {p} is not valid {p.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {p} must hold a flat mapping of keys to values")
    values.update(overrides or {})
    return TrialConfig.from_dict(values)


def parse_overrides(items: Iterable[str] | None) -> dict[str, Any]:
    """`--set key=value` strings -> dict, for `gan-study trial` and `gan-study run` alike.

    A TrialConfig key gets its field's type, by the coercion `from_dict` applies (so `name=on` stays a
    string and `hist_eq=true` is a bool; a bad value fails here with from_dict's message). Any other key
    (a search-space factor such as `ttur=on`) gets a YAML scalar, which is how the space file types it;
    unknown keys are rejected by whoever applies the overrides.
    """
    fields = {f.name: f for f in dataclasses.fields(TrialConfig)}
    out: dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"--set {item!r} must look like key=value")
        key, value = (part.strip() for part in item.split("=", 1))
        if key in fields:
            out[key] = _coerce(key, value, fields[key].type, fields[key].default)
        else:
            out[key] = _yaml_scalar(value)
    return out


def _yaml_scalar(text: str) -> Any:
    import yaml  # only factor overrides need it; keep `import trainers.config` light

    try:
        return yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text


# ----------------------------------------------------------------------
def _choice(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; allowed values: {', '.join(map(str, allowed))}")


def _range(key: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
        raise ConfigError(f"{key}={value!r} is out of range; allowed: {low} <= {key} <= {high}")


_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _coerce(key: str, value: Any, type_name: Any, default: Any) -> Any:
    want = _TYPES.get(str(type_name), type(default))
    if want is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}={value!r} must be a boolean (true/false)")
    if want is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} must be an integer")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(value) if not isinstance(value, float) else _fail_int(key, value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={value!r} must be an integer") from None
    if want is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={value!r} must be a number") from None
    return str(value)


def _fail_int(key: str, value: Any) -> int:
    raise ConfigError(f"{key}={value!r} must be an integer")
