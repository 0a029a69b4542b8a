"""Metric names, defined once. Trainers report them, the study stores them, analysis reads them.

Never spell a metric as a string literal elsewhere: import the constant.
"""

# --- per-iteration / per-report training signals (seed 003's Loss_D, Loss_G, D(x), D(G(z)))
ITERATION = "iteration"  # generator steps done when the report was made
EPOCH = "epoch"  # passes over the training split (fractional)
LOSS_D = "loss_d"  # mean adversarial D loss over the report interval (every D step; no aux class loss, no GP)
LOSS_G = "loss_g"  # mean adversarial G loss over the report interval (no aux class loss)
AUX_LOSS_D = "aux_loss_d"  # ACGAN only: D's class cross-entropy (real + fake), unweighted
AUX_LOSS_G = "aux_loss_g"  # ACGAN only: G's class cross-entropy on its fakes, unweighted
GRADIENT_PENALTY = "gradient_penalty"  # WGAN-GP only: the weighted penalty D minimises beside the critic loss
D_X = "d_x"  # mean D(x) on real images (probability for BCE-type losses, raw score otherwise)
D_G_Z = "d_g_z"  # mean D(G(z)) on fakes, measured in the D step
GRAD_NORM_D = "grad_norm_d"  # mean L2 norm of D's gradient over the interval
GRAD_NORM_G = "grad_norm_g"

# --- seed 002 Table I statistics over the whole run so far (exact running moments, every iteration)
D_LOSS_MEAN = "d_loss_mean"
D_LOSS_VAR = "d_loss_var"  # population variance (ddof=0) of every D step's adversarial loss
D_LOSS_STD = "d_loss_std"
G_LOSS_MEAN = "g_loss_mean"
T0 = "t0"  # length of the initial low-D-loss phase, in iterations (defined in trainers/run_stats.py); NaN until it ends
T0_CENSORED = "t0_censored"  # True when the run ended still inside the low-D-loss phase (T0 = iterations run)

# --- cost
IMAGES_PER_S = "images_per_s"  # real images consumed per second of training (D steps x batch)
PEAK_MEMORY_MB = "peak_memory_mb"  # CUDA max allocated, or process peak RSS on CPU
PARAMS_G = "params_g"
PARAMS_D = "params_d"
WALL_S = "wall_s"  # seconds since the trial started (including resumed time)

# --- trial outcome
STATUS = "status"  # one of the STATUS_* values below
REASON = "reason"  # why a trial ended other than finished ("" otherwise)
SAMPLE_PATH = "sample_path"  # PNG of the fixed-latent sample grid for this report
SAMPLE_DIVERSITY = "sample_diversity"  # per-pixel std across the fixed-latent samples (0 = collapsed)

# A trial's status. The loop reports running, finished or diverged; the study adds the others.
STATUS_PENDING = "pending"  # not started yet, or interrupted (Ctrl-C) and waiting for `gan-study resume`
STATUS_RUNNING = "running"
STATUS_FINISHED = "finished"
STATUS_DIVERGED = "diverged"
STATUS_STOPPED = "stopped"  # stopped early by a scheduler (ASHA/PBT) or a stopper
STATUS_ERRORED = "errored"  # the trial raised; REASON holds the exception line

# --- evaluation (issue: evaluation); every value is stored with its extractor and N
FID = "fid"
KID_MEAN = "kid_mean"
KID_STD = "kid_std"
PRECISION = "precision"
RECALL = "recall"
MS_SSIM_DIVERSITY = "ms_ssim_diversity"  # 1 - mean pairwise MS-SSIM between samples (higher = more diverse)
FID_PER_CLASS_PREFIX = "fid_class_"  # + class name, for conditional generators
MEMORISATION_RATIO = "memorisation_ratio"  # median NN(synthetic->train) / median NN(train->train)
MEMORISATION_MIN_DIST = "memorisation_min_dist"
EVAL_EXTRACTOR = "eval_extractor"  # e.g. "domain:<fingerprint>" or "inception-2048"
EVAL_N = "eval_n"  # samples per side used for FID/KID
# SHA-256 (first 16 hex digits) of the extractor's weights as loaded: two FIDs are on one scale only when
# this matches, whatever the extractor's name says (a retrained or re-downloaded extractor changes it).
EVAL_EXTRACTOR_SHA256 = "eval_extractor_sha256"
# Images the extractor was trained on (domain extractor; NaN for pretrained ones): below
# trainers.evaluation.defaults.MIN_EXTRACTOR_TRAIN_IMAGES its FIDs are near 0 for any generator.
EVAL_EXTRACTOR_TRAIN_N = "eval_extractor_train_n"
# What `Evaluator.evaluate` measures, at evaluations only (`fid_every`), not at every report: NaN when the
# generator's images are not finite, and a scheduler comparing one of them part-way needs a part-way
# cadence. Conditional generators add the FID_PER_CLASS_PREFIX keys.
EVALUATED_METRICS = (FID, KID_MEAN, KID_STD, PRECISION, RECALL, MS_SSIM_DIVERSITY, MEMORISATION_RATIO,
                     MEMORISATION_MIN_DIST)

# --- downstream classifiers, prefixed by protocol: tstr_, augment_, trtr_
TSTR_PREFIX = "tstr_"
AUGMENT_PREFIX = "augment_"
TRTR_PREFIX = "trtr_"
ACCURACY = "accuracy"
BALANCED_ACCURACY = "balanced_accuracy"
ROC_AUC = "roc_auc"
TEST_SPLIT = "test_split"  # + prefix: fingerprint of the real split the classifier was tested on
AUGMENT_GAIN = "augment_gain"  # augmented accuracy minus real-only accuracy (fit by fit, same seeds)
FITS = "fits"  # + prefix: classifier fits averaged (classifier_repeats)
ACCURACY_FIT_SD = "accuracy_fit_sd"  # + prefix: standard deviation of accuracy over those fits (from two fits on)

# The metric a study optimises by default, and its direction.
DEFAULT_METRIC = FID
DEFAULT_MODE = "min"

# --- issue 23: density/coverage, held-out FID and calibrated memorisation, re-scoring with other extractors
DENSITY = "density"  # Naeem et al. 2020, k = 5, same features and N as precision/recall (~1 = real-like; unbounded)
COVERAGE = "coverage"  # Naeem et al. 2020: share of real samples whose 5-NN ball holds a synthetic one
# FID against held-out real images: the test split (never trained on) at n = min(N, its size) images per side,
# beside FID against that many of the N training-split reference images, from the same synthetic images.
FID_TEST = "fid_test"
FID_TRAIN_AT_TEST_N = "fid_train_at_test_n"
EVAL_TEST_N = "eval_test_n"  # n of those two FIDs and the held-out images of the memorisation shares
# Held-out calibrated memorisation (trainers/evaluation/memorisation.py), on the extractor's features: the share
# of synthetic images nearer to one of the N reference (training) images than the 1st / 5th percentile of the
# held-out images' distances to them; the held-out images' own share (cross-fitted halves) beside it; flagged (1.0)
# when the 1st-percentile share exceeds 1% beyond chance (one-sided exact binomial p, MEMORISATION_FLAG_P < 0.001).
MEMORISATION_SHARE_P1 = "memorisation_share_p1"
MEMORISATION_SHARE_P5 = "memorisation_share_p5"
MEMORISATION_HELDOUT_SHARE_P1 = "memorisation_heldout_share_p1"
MEMORISATION_HELDOUT_SHARE_P5 = "memorisation_heldout_share_p5"
MEMORISATION_FLAG_P = "memorisation_flag_p"
MEMORISATION_FLAGGED = "memorisation_flagged"
# The same in pixels (images in [-1, 1]); computed by `gan-study rescore`, not at every evaluation (not cheap).
MEMORISATION_PIXEL_SHARE_P1 = "memorisation_pixel_share_p1"
MEMORISATION_PIXEL_SHARE_P5 = "memorisation_pixel_share_p5"
MEMORISATION_PIXEL_HELDOUT_SHARE_P1 = "memorisation_pixel_heldout_share_p1"
MEMORISATION_PIXEL_HELDOUT_SHARE_P5 = "memorisation_pixel_heldout_share_p5"
MEMORISATION_PIXEL_FLAG_P = "memorisation_pixel_flag_p"
MEMORISATION_PIXEL_FLAGGED = "memorisation_pixel_flagged"
# Measured at every evaluation beside the metrics above (NaN for non-finite images; NaN for the held-out ones
# when the data source has no test split).
EVALUATED_METRICS = EVALUATED_METRICS + (DENSITY, COVERAGE, FID_TEST, FID_TRAIN_AT_TEST_N, MEMORISATION_SHARE_P1,
                                         MEMORISATION_SHARE_P5, MEMORISATION_HELDOUT_SHARE_P1,
                                         MEMORISATION_HELDOUT_SHARE_P5, MEMORISATION_FLAG_P, MEMORISATION_FLAGGED)
# `gan-study rescore DIR --extractor NAME` writes each re-scored metric as `<metric>@<tag>` beside the trial's own
# (e.g. `fid@domain-seed1`, `fid_test@xrv`); the tag names the extractor (and its seed): RESCORE_TAG values.
RESCORE_SEP = "@"
RESCORED_METRICS = (FID, KID_MEAN, KID_STD, PRECISION, RECALL, DENSITY, COVERAGE, FID_TEST, FID_TRAIN_AT_TEST_N,
                    EVAL_TEST_N, MEMORISATION_SHARE_P1, MEMORISATION_SHARE_P5, MEMORISATION_HELDOUT_SHARE_P1,
                    MEMORISATION_HELDOUT_SHARE_P5, MEMORISATION_FLAG_P, MEMORISATION_FLAGGED, EVAL_EXTRACTOR, EVAL_N,
                    EVAL_EXTRACTOR_SHA256, EVAL_EXTRACTOR_TRAIN_N)

# --- D signals beside the D loss (issue #22; trainers/levers/signals.py), reported whatever levers are on
R_T = "r_t"  # ADA's overfitting signal E[sign(D(x) - c)] on the real images D trained on, mean over the interval
R_T_MEAN = "r_t_mean"  # r_t over every D step of the run so far (like d_loss_mean)
D_MARGIN_MEAN = "d_margin_mean"  # D(x) - D(G(z)) over every D step of the run so far (the d_x/d_g_z scores)
D_ACC_TRAIN = "d_acc_train"  # share of a fixed batch of training images D calls real, at this report
D_ACC_HELDOUT = "d_acc_heldout"  # the same on a fixed batch of held-out real images (val split, else test)
D_ACC_GAP = "d_acc_gap"  # d_acc_train - d_acc_heldout: BigGAN's overfitting gap (grows as D memorises)
ADA_P = "ada_p"  # ADA's augmentation probability at this report (apply_ada only)
EVAL_GENERATOR = "eval_generator"  # the weights FID/KID/TSTR measured: "ema" (apply_g_ema) or "g"
