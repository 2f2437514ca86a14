"""A small HTTP/1.1 load generator over keep-alive connections (asyncio streams).

Light enough to leave the CPU to the server on a 2-core machine, and able to drive
both closed-loop (N connections, as fast as possible) and open-loop (a fixed arrival
rate, latency measured from the scheduled send time, so queueing counts) loads.
Connections are dealt in turn to the servers' ports, as a load balancer would spread
them over API processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class Connection:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        assert self.reader is not None
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


Body = Callable[[int], bytes]


async def closed_loop(
    host: str,
    ports: list[int],
    path: str,
    body: Body,
    headers: dict[str, str],
    connections: int,
    seconds: float,
) -> Result:
    result = Result()
    counter = iter(range(10**9))
    deadline = time.perf_counter() + seconds

    async def worker(port: int) -> None:
        connection = Connection(host, port)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status = await connection.request(path, body(next(counter)), headers)
            if status == 200:
                result.latencies.append(time.perf_counter() - started)
            else:
                result.errors += 1
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(ports[i % len(ports)]) for i in range(connections)))
    result.seconds = time.perf_counter() - started
    return result


async def open_loop(
    host: str,
    ports: list[int],
    path: str,
    body: Body,
    headers: dict[str, str],
    rate: float,
    seconds: float,
    connections: int = 32,
) -> Result:
    result = Result()
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for i in range(connections):
        pool.put_nowait(Connection(host, ports[i % len(ports)]))

    async def one(n: int, scheduled: float) -> None:
        connection = await pool.get()
        status = await connection.request(path, body(n), headers)
        pool.put_nowait(connection)
        if status == 200:
            result.latencies.append(time.perf_counter() - scheduled)
        else:
            result.errors += 1

    started = time.perf_counter()
    tasks = []
    for n in range(int(rate * seconds)):
        scheduled = started + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, scheduled)))
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - started
    while not pool.empty():
        pool.get_nowait().close()
    return result
