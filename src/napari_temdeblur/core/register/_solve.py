"""Global positions from pairwise shifts: weighted least squares over frames and HQ images, with
outlying matches dropped and frames no match places flagged.

Every measured shift ``d`` between nodes i and j (stream frames, HQ images) is one equation
``p_j - p_i = d`` per axis; y and x are independent for translations, so each is one sparse linear
least-squares problem (``scipy.sparse.linalg.lsqr``). Weak equations between consecutive frames at the
stage's mean step keep parts that no match connects (after a frame that matches nothing and a stage
jump) in one system; they are too weak to move frames that matches do connect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import lsqr

#: Weight of the mean-step equations between consecutive frames, against 1 for a measured shift.
STEP_WEIGHT = 1e-4
#: A match whose shift disagrees with the solution by more than this (stream px) is dropped ...
OUTLIER_PX = 1.5
#: ... in at most this many rounds of dropping and solving again.
OUTLIER_ROUNDS = 8


@dataclass(frozen=True)
class Edge:
    """One equation ``p[second] - p[first] = shift_yx`` (nodes are frame indices or ``"hq:<name>"``)."""

    first: object
    second: object
    shift_yx: tuple[float, float]
    weight: float = 1.0


def _solve_axes(nodes: list, edges: list[Edge]) -> np.ndarray:
    """float64 (len(nodes), 2) least-squares positions, the first node at 0."""
    where = {n: k for k, n in enumerate(nodes)}
    rows, cols, vals = [], [], []
    for r, e in enumerate(edges):
        rows += [r, r]
        cols += [where[e.first], where[e.second]]
        vals += [-e.weight, e.weight]
    # the gauge: the first node stays at 0 (the positions are shifted afterwards)
    rows.append(len(edges))
    cols.append(0)
    vals.append(1.0)
    a = sparse.csr_matrix((vals, (rows, cols)), shape=(len(edges) + 1, len(nodes)))
    out = np.zeros((len(nodes), 2))
    for axis in range(2):
        b = np.array([e.weight * e.shift_yx[axis] for e in edges] + [0.0])
        out[:, axis] = lsqr(a, b, atol=1e-12, btol=1e-12, iter_lim=50 * len(nodes) + 1000)[0]
    return out


def residuals(positions: dict, edges: list[Edge]) -> np.ndarray:
    """|p_j - p_i - d| (stream px) of each edge."""
    return np.array(
        [np.hypot(*np.subtract(np.subtract(positions[e.second], positions[e.first]), e.shift_yx)) for e in edges]
    )


def solve_positions(frames: list[int], measured: list[Edge], step_yx) -> tuple[dict, list[Edge], list[Edge]]:
    """Positions of the nodes `measured` connects, least squares, dropping outlying matches.

    Parameters
    ----------
    frames : list of int
        Usable frame indices, in stream order (the mean-step equations join consecutive ones).
    measured : list of Edge
        Shifts between frames, and between frames and HQ images.
    step_yx : (float, float)
        The stage's mean step between consecutive frames, stream px.

    Returns
    -------
    positions : dict
        Node -> (y, x), stream px, in an arbitrary common origin.
    kept, dropped : list of Edge
        The measured edges used, and those dropped as outliers.
    """
    kept, dropped = list(measured), []
    for _ in range(OUTLIER_ROUNDS + 1):
        linked = {n for e in kept for n in (e.first, e.second) if not isinstance(n, str)}
        chain = [t for t in frames if t in linked]
        steps = [
            Edge(s, t, (step_yx[0] * (t - s), step_yx[1] * (t - s)), STEP_WEIGHT) for s, t in zip(chain, chain[1:])
        ]
        nodes = chain + sorted({n for e in kept for n in (e.first, e.second) if isinstance(n, str)})
        if not nodes:
            return {}, kept, dropped
        solved = _solve_axes(nodes, kept + steps)
        positions = {n: tuple(solved[k]) for k, n in enumerate(nodes)}
        errors = residuals(positions, kept)
        if not len(errors) or errors.max() <= OUTLIER_PX:
            break
        # drop the worst matches (and any about as bad), then solve again without them
        bad = errors > max(OUTLIER_PX, 0.5 * errors.max())
        dropped += [e for e, b in zip(kept, bad) if b]
        kept = [e for e, b in zip(kept, bad) if not b]
    return positions, kept, dropped


def components(nodes: list, edges: list[Edge]) -> list[list]:
    """Groups of nodes that edges connect (union-find), each sorted, in the order of their first node."""
    parent = {n: n for n in nodes}

    def root(n):
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for e in edges:
        if e.first in parent and e.second in parent:
            parent[root(e.first)] = root(e.second)
    groups: dict = {}
    for n in nodes:
        groups.setdefault(root(n), []).append(n)
    return list(groups.values())
