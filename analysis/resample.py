"""Resampling plans in which the configuration, not the trial, is the unit (docs/STATISTICS.md).

Seeds of one configuration share its effect, so they are repeats, not independent observations.
Resampling single trials makes a trial-level statistic look more certain than it is (a null simulation
of 8 configurations x 3 seeds rejected ~31% of the time at alpha 0.05). Both plans here therefore
move whole configurations ("clusters"):

- the bootstrap draws configurations with replacement, within each stratum, and keeps all their seeds.
  A draw is a (B, n) matrix of row weights: how often each row's configuration was drawn. Weighted
  statistics on it equal the statistic on the stacked resample, without ragged index arrays.
- a permutation gives configuration c's block of seeds the values of configuration pi(c)'s block
  (seed j of one to seed j of the other). pi only exchanges configurations with the same number of
  seeds in the same stratum, so every permuted data set has the layout of the observed one.

With one row per cluster and one stratum both are the ordinary bootstrap and permutation.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Design:
    """Cluster (configuration) of each of n rows, and the stratum of each cluster."""

    clusters: np.ndarray  # (n,) codes 0..C-1
    strata: np.ndarray  # (C,) stratum code per cluster

    @classmethod
    def of(cls, n: int, clusters=None, strata=None) -> Design:
        """From any row labels; None: every row is its own cluster / every cluster in one stratum."""
        codes = np.arange(n) if clusters is None else _codes(clusters)
        if len(codes) != n:
            raise ValueError(f"clusters has {len(codes)} labels for {n} rows")
        first_row = np.unique(codes, return_index=True)[1]
        row_strata = np.zeros(n, dtype=int) if strata is None else _codes(strata)
        return cls(codes, row_strata[first_row])

    @property
    def n_clusters(self) -> int:
        return len(self.strata)

    def members(self) -> list[np.ndarray]:
        """Row indices of each cluster, in row order."""
        order = np.argsort(self.clusters, kind="stable")
        bounds = np.cumsum(np.bincount(self.clusters, minlength=self.n_clusters))[:-1]
        return np.split(order, bounds)


def bootstrap_weights(design: Design, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B, n) row weights of B cluster-bootstrap resamples (clusters drawn within their stratum)."""
    counts = np.zeros((n_resamples, design.n_clusters))
    offsets = np.arange(n_resamples)[:, None] * design.n_clusters
    for stratum in np.unique(design.strata):
        pool = np.flatnonzero(design.strata == stratum)
        draws = pool[rng.integers(0, len(pool), size=(n_resamples, len(pool)))]
        counts += np.bincount((draws + offsets).ravel(), minlength=counts.size).reshape(counts.shape)
    return counts[:, design.clusters]


def jackknife_weights(design: Design) -> np.ndarray:
    """(C, n) row weights leaving out one cluster each (for BCa's acceleration)."""
    return (design.clusters[None, :] != np.arange(design.n_clusters)[:, None]).astype(float)


def block_permutations(design: Design, n_permutations: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """(P, n) row permutations that move whole clusters, and whether they are all of them (exact).

    Row i of a permutation says which row's value lands in row i. Exact enumeration (identity included)
    when the number of block arrangements fits the budget; else `n_permutations` random ones. A design
    where no two clusters can be exchanged yields only the identity.
    """
    members = design.members()
    sizes = np.array([len(m) for m in members])
    key = design.strata * (sizes.max() + 1) + sizes
    swappable = [np.flatnonzero(key == k) for k in np.unique(key)]
    swappable = [g for g in swappable if len(g) > 1]
    total = math.prod(math.factorial(len(g)) for g in swappable)
    exact = total <= n_permutations
    if exact:
        combos = list(itertools.product(*(itertools.permutations(range(len(g))) for g in swappable)))
        sigmas = [np.array([c[i] for c in combos], dtype=int).reshape(len(combos), -1) for i in range(len(swappable))]
        n_rows = len(combos)
    else:
        sigmas = [np.argsort(rng.random((n_permutations, len(g))), axis=1) for g in swappable]
        n_rows = n_permutations
    perms = np.tile(np.arange(len(design.clusters)), (n_rows, 1))
    for group, sigma in zip(swappable, sigmas):
        block = np.stack([members[c] for c in group])  # (k, m): equal sizes within a group
        perms[:, block.ravel()] = block[sigma].reshape(n_rows, -1)
    return perms, exact


def _codes(labels) -> np.ndarray:
    return pd.factorize(pd.Series(np.asarray(labels, dtype=object)), use_na_sentinel=False)[0].astype(int)
