"""Every evaluation default in one place (torch-fidelity habit)."""

LATENT_SEED = 1234  # fixed latent seed for evaluation samples: trials are compared on the same z
REAL_SUBSET_SEED = 0  # which N real training images form the reference set
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000  # capped at N
KID_DEGREE, KID_COEF0 = 3, 1.0  # polynomial kernel (x.y / d + 1)^3, Binkowski et al. 2018
PRC_K = 3  # k-NN radius for precision/recall manifolds (Kynkaanniemi et al. 2019)
DIVERSITY_PAIRS = 200  # random sample pairs for the SSIM/MS-SSIM diversity score
DOMAIN_EPOCHS = 4  # training epochs of the chest-X-ray domain extractor
DOMAIN_FEATURES = 128  # penultimate width of the domain extractor = its feature dimension
DOMAIN_BATCH = 128
SAMPLE_BATCH = 256
RANGE_TOLERANCE = 1e-3  # generator outputs must lie in [-1, 1] within this
# Below this many training images the domain extractor's features separate little (seen: tens of images give
# FID near 0 for an untrained generator): results carry the count and analyze warns under it.
MIN_EXTRACTOR_TRAIN_IMAGES = 500
# --- issue 23: density/coverage, held-out calibrated memorisation, nearest pairs
DC_K = 5  # k-NN radius for density and coverage (Naeem et al. 2020 recommend k = 5)
MEMORISATION_PERCENTILES = (1, 5)  # of held-out->train nearest distances: the thresholds of the copy shares
MEMORISATION_FLAG_ALPHA = 1e-3  # one-sided exact binomial test of the 1st-percentile share against 1%
HELDOUT_SPLIT_SEED = 0  # splits the held-out distances in two halves for their own (cross-fitted) share
NEAREST_PAIRS = 8  # closest synthetic/training pairs kept per trial for the dashboard
PAIRS_MAX_TRAIN = 20000  # training images searched for those pairs (a fixed random subset above this)
DISTANCE_BATCH = 512  # query rows per block of a nearest-neighbour search (bounds memory)
