"""Distance and travel-time matrices between points, from a configurable provider.

Two providers sit behind `MatrixProvider`: the default great-circle one needs no
network (straight-line distance stretched by a road circuity factor, driven at the
area's average speed); `OsrmTable` asks an OSRM-compatible table service for road
distances and durations. `matrix_for` picks one from the settings and caches results
in process memory (see `MatrixCache`). A provider that fails raises `MatrixError`
with a message saying what went wrong, which a plan run records as its failure.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import httpx
import numpy as np

from services.core.models import ServiceArea
from services.core.settings import Settings, get_settings

EARTH_RADIUS_M = 6_371_008.8

Point = tuple[float, float]  # (lat, lng)
# (metres, seconds) as int64 arrays: at thousands of points, lists of lists would cost
# seconds and gigabytes to build, and every step after this works on arrays.
Matrices = tuple[np.ndarray, np.ndarray]


class MatrixError(Exception):
    """The matrix provider could not answer; the message says which and why."""


class MatrixProvider(Protocol):
    def __call__(self, points: Sequence[Point]) -> Matrices:
        """(distance in metres, travel time in seconds) between every pair of points."""
        ...


def great_circle_matrix(points: Sequence[Point], circuity: float, speed_kmh: float) -> Matrices:
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
    return np.rint(metres).astype(np.int64), np.rint(seconds).astype(np.int64)


@dataclass(frozen=True)
class GreatCircle:
    circuity: float
    speed_kmh: float

    def __call__(self, points: Sequence[Point]) -> Matrices:
        return great_circle_matrix(points, self.circuity, self.speed_kmh)


@dataclass(frozen=True)
class OsrmTable:
    """OSRM's table service: `GET {base}/table/v1/driving/{lng,lat;...}`."""

    base_url: str
    timeout: float = 30.0

    def __call__(self, points: Sequence[Point]) -> Matrices:
        where = ";".join(f"{lng:.6f},{lat:.6f}" for lat, lng in points)
        url = f"{self.base_url.rstrip('/')}/table/v1/driving/{where}"
        try:
            response = httpx.get(
                url, params={"annotations": "distance,duration"}, timeout=self.timeout
            )
        except httpx.HTTPError as error:
            raise MatrixError(f"OSRM at {self.base_url} is unreachable: {error}") from error
        try:
            body = response.json()
        except ValueError as error:
            raise MatrixError(
                f"OSRM at {self.base_url} gave a malformed answer "
                f"(HTTP {response.status_code}, not JSON)"
            ) from error
        if not isinstance(body, dict) or body.get("code") != "Ok":
            code = body.get("code") if isinstance(body, dict) else None
            message = body.get("message", "") if isinstance(body, dict) else ""
            raise MatrixError(
                f"OSRM at {self.base_url} answered code {code!r} "
                f"(HTTP {response.status_code}): {message}".rstrip(": ")
            )
        return (
            self._table(body, "distances", len(points)),
            self._table(body, "durations", len(points)),
        )

    def _table(self, body: dict[str, object], key: str, size: int) -> np.ndarray:
        rows = body.get(key)
        if not isinstance(rows, list) or len(rows) != size:
            raise MatrixError(
                f"OSRM at {self.base_url} gave a malformed answer: no {size}x{size} {key}"
            )
        table = []
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != size:
                raise MatrixError(f"OSRM at {self.base_url} gave a malformed answer: {key} row {i}")
            for j, value in enumerate(row):
                if value is None:
                    raise MatrixError(f"OSRM finds no road from point {i} to point {j}")
                if not isinstance(value, int | float) or value < 0:
                    raise MatrixError(
                        f"OSRM at {self.base_url} gave a malformed answer: {key}[{i}][{j}]"
                    )
            table.append([round(value) for value in row])
        return np.array(table, dtype=np.int64).reshape(size, size)


def provider_for(area: ServiceArea, settings: Settings) -> MatrixProvider:
    if settings.matrix_provider == "osrm":
        if not settings.osrm_url:
            raise MatrixError("matrix_provider is osrm but LASTMILE_OSRM_URL is not set")
        return OsrmTable(settings.osrm_url, settings.osrm_timeout_seconds)
    return GreatCircle(settings.road_circuity, area.average_speed_kmh)


class MatrixCache:
    """An LRU of matrices with a time to live, keyed by area, provider and point set.

    Points are rounded to 5 decimals (about a metre) and sorted, so the same stops in
    another order, or a retried plan run, reuse one entry; rows are permuted back to
    the caller's order. Entries expire after `ttl` seconds so road data can change.
    """

    def __init__(self, size: int, ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self._entries: OrderedDict[tuple[object, ...], tuple[float, Matrices]] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, key: tuple[object, ...], points: Sequence[Point], provider: MatrixProvider
    ) -> Matrices:
        rounded = [(round(lat, 5), round(lng, 5)) for lat, lng in points]
        unique = sorted(set(rounded))
        full_key = (*key, tuple(unique))
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(full_key)
            if hit is not None and now - hit[0] <= self.ttl:
                self._entries.move_to_end(full_key)
                canonical = hit[1]
            else:
                hit = None
        if hit is None:
            canonical = provider(unique)
            with self._lock:
                self._entries[full_key] = (now, canonical)
                self._entries.move_to_end(full_key)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        index = {point: k for k, point in enumerate(unique)}
        order = np.array([index[point] for point in rounded], dtype=np.int64)
        cut = np.ix_(order, order)
        distance, duration = canonical
        return distance[cut], duration[cut]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@lru_cache(maxsize=1)
def shared_cache() -> MatrixCache:
    """The process's matrix cache, sized from the settings on first use."""
    settings = get_settings()
    return MatrixCache(settings.matrix_cache_size, settings.matrix_cache_seconds)


def matrix_for(area: ServiceArea, points: Sequence[Point]) -> Matrices:
    """The configured provider's matrices for an area's points, through the cache."""
    provider = provider_for(area, get_settings())
    return shared_cache().get((area.id, provider), points, provider)
