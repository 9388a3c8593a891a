"""A bounded ring buffer of samples for the dirty-rate / throughput chart."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

# ~5 minutes of 1 s polls.
DEFAULT_CAPACITY = 300


@dataclass(frozen=True)
class Sample:
    time: float
    dirty_rate_bytes_per_s: float | None = None
    throughput_bytes_per_s: float | None = None


class History:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._samples: deque[Sample] = deque(maxlen=capacity)

    @property
    def capacity(self) -> int:
        return self._samples.maxlen or 0

    def append(self, sample: Sample) -> None:
        # Out-of-order samples would make the chart run backwards: drop them.
        if self._samples and sample.time < self._samples[-1].time:
            return
        self._samples.append(sample)

    def clear(self) -> None:
        self._samples.clear()

    @property
    def latest(self) -> Sample | None:
        return self._samples[-1] if self._samples else None

    def since(self, t: float) -> list[Sample]:
        return [s for s in self._samples if s.time >= t]

    def __len__(self) -> int:
        return len(self._samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self._samples)

    def __getitem__(self, index: int) -> Sample:
        return self._samples[index]
