"""Distance and travel-time matrices between points.

The default provider needs no network: great-circle distance stretched by a road
circuity factor, driven at the area's average speed. A road-network provider can
replace it behind the same function signature.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EARTH_RADIUS_M = 6_371_008.8


def great_circle_matrix(
    points: Sequence[tuple[float, float]], circuity: float, speed_kmh: float
) -> tuple[list[list[int]], list[list[int]]]:
    """(distance in metres, travel time in seconds) between every pair of (lat, lng)."""
    if speed_kmh <= 0 or circuity < 1:
        raise ValueError("speed must be positive and circuity at least 1")
    lat = np.radians(np.array([p[0] for p in points], dtype=float))
    lng = np.radians(np.array([p[1] for p in points], dtype=float))
    dlat = lat[:, None] - lat[None, :]
    dlng = lng[:, None] - lng[None, :]
    a = np.sin(dlat / 2) ** 2 + np.cos(lat)[:, None] * np.cos(lat)[None, :] * np.sin(dlng / 2) ** 2
    metres = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))) * circuity
    seconds = metres / (speed_kmh / 3.6)
    return np.rint(metres).astype(int).tolist(), np.rint(seconds).astype(int).tolist()
