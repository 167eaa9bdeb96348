"""The demo scene's objects as exact surfaces (parameters from ``scripts/make_demo_scene.py --seed 0``)."""

from __future__ import annotations

import numpy as np


def _disc(center: np.ndarray, radius: float, z: float, n: int, rng) -> np.ndarray:
    r = radius * np.sqrt(rng.random(n))
    a = rng.random(n) * 2 * np.pi
    return np.stack([center[0] + r * np.cos(a), center[1] + r * np.sin(a), np.full(n, z)], axis=1)


def surface_points(object_id: int, n: int = 60000, seed: int = 0) -> np.ndarray:
    """Nx3 points spread over the surface of demo object 1-4 (sphere, box, cylinder, cone), world metres.

    Faces resting on the table (z = 0) are left out: no camera can see them.
    """
    rng = np.random.default_rng(seed)
    if object_id == 1:
        v = rng.normal(size=(n, 3))
        p = np.array([-0.17, 0.04, 0.09]) + 0.09 * v / np.linalg.norm(v, axis=1, keepdims=True)
        return p[p[:, 2] > 0.002]
    if object_id == 2:
        half = np.array([0.085, 0.06, 0.075])
        c, s = np.cos(np.radians(25.0)), np.sin(np.radians(25.0))
        rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        local = rng.uniform(-1, 1, size=(n, 3)) * half
        axis = rng.integers(0, 3, n)
        side = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        local[np.arange(n), axis] = side * half[axis]
        local = local[~((axis == 2) & (side < 0))]  # the bottom face
        return local @ rotation.T + np.array([0.13, 0.13, 0.075])
    if object_id == 3:
        center, radius, height = np.array([0.17, -0.11]), 0.05, 0.2
        m = int(n * 0.8)
        a = rng.random(m) * 2 * np.pi
        side = np.stack(
            [center[0] + radius * np.cos(a), center[1] + radius * np.sin(a), rng.random(m) * height], 1
        )
        return np.concatenate([side, _disc(center, radius, height, n - m, rng)])
    if object_id == 4:
        center, radius, height = np.array([-0.05, -0.16]), 0.065, 0.16
        t = np.sqrt(rng.random(n))  # uniform over the lateral area: radius grows linearly towards the base
        a = rng.random(n) * 2 * np.pi
        r = radius * t
        return np.stack([center[0] + r * np.cos(a), center[1] + r * np.sin(a), height * (1 - t)], axis=1)
    raise ValueError(f"the demo scene has objects 1-4, not {object_id}")
