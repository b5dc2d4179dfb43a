"""The simulated grow chamber that simulated sensors read and simulated actuators act on.

A kit with no hardware (or `make run`) still shows actuators at work: the light sensor sees the
LED panel, a running fan or cooler pulls the temperature down, a heater and the lamps warm it.
The air follows what the actuators ask for with a lag (an exponential approach over
`lag_seconds`), so a thermostat switches on, the temperature moves, and it switches off again.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable

# Per actuator kind, at level 100: lux added on the light sensor, and °C the air settles at
# above (below, if negative) what the day alone would give.
LUX_AT_FULL = {"light": 15_000.0}
WARMING_AT_FULL = {"light": 3.0, "heater": 8.0, "fan": -5.0, "cooler": -8.0}


class SimulatedWorld:
    def __init__(self, *, lag_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.lag_seconds = lag_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._levels: dict[str, tuple[str, float]] = {}  # actuator key -> (kind, level 0-100)
        self._warming = 0.0  # °C the air is above the day's curve now
        self._updated = clock()

    def actuator_set(self, key: str, kind: str, level: float) -> None:
        with self._lock:
            self._advance()
            self._levels[key] = (kind, float(level))

    def light_lux(self) -> float:
        """Light the kit's own lamps add, in lux."""
        with self._lock:
            return sum(LUX_AT_FULL.get(kind, 0.0) * level / 100 for kind, level in self._levels.values())

    def warming(self) -> float:
        """°C the actuators have moved the air from the day's curve, so far."""
        with self._lock:
            self._advance()
            return self._warming

    def _advance(self) -> None:
        now = self.clock()
        target = sum(WARMING_AT_FULL.get(kind, 0.0) * level / 100 for kind, level in self._levels.values())
        elapsed = max(0.0, now - self._updated)
        self._warming += (target - self._warming) * (1 - math.exp(-elapsed / self.lag_seconds))
        self._updated = now
