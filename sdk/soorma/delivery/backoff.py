"""Retry delays: capped exponential backoff with jitter.

"Full jitter" (``uniform(0, min(cap, base·2^(n-1)))``) for redelivery delays and "equal jitter" (half fixed, half
random) for pausing a throttled route, as in AWS's "Exponential Backoff And Jitter"
(https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/). The redelivery delay is passed to
JetStream as ``-NAK {"delay": ns}``
(https://docs.nats.io/using-nats/developer/develop_jetstream/model_deep_dive#acknowledgement-models).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ExponentialBackoff:
    """``backoff(attempt)`` → seconds for the 1-based ``attempt`` (a message's delivery count).

    Defaults: base 1 s, cap 60 s. Tests pass tiny values (``ExponentialBackoff(0.01, 0.05)``).
    """

    base_s: float = 1.0
    cap_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.cap_s < 0:
            raise ValueError("backoff base and cap must be >= 0")

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay ``min(cap, base·2^(attempt-1))``."""
        exponent = min(max(attempt, 1) - 1, 62)
        return min(self.cap_s, self.base_s * (2.0**exponent))

    def __call__(self, attempt: int) -> float:
        """Full jitter: uniform in ``[0, ceiling(attempt)]``."""
        return self.rng.uniform(0.0, self.ceiling(attempt))

    def pause(self, attempt: int) -> float:
        """Equal jitter: uniform in ``[ceiling/2, ceiling]`` (never ~0, used to slow down a throttled route)."""
        ceiling = self.ceiling(attempt)
        return ceiling / 2 + self.rng.uniform(0.0, ceiling / 2)
