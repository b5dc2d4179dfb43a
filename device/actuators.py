"""Actuator drivers behind one small interface: `set_level(level)` with a level from 0 to 100
(an on/off actuator gets 0 or 100).

Simulated drivers act on the simulated world the simulated sensors read (device.simulation).
Real drivers switch Raspberry Pi GPIO pins through gpiozero, imported only when such an actuator
is configured: a relay (OutputDevice) for on/off, PWM (PWMOutputDevice) for dimming. A driver that
cannot be set up leaves a plain reason in `ActuatorSet.failures`; the kit goes on without it, and
refuses any configuration that would need it.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Callable

from .config import ActuatorConfig
from .simulation import SimulatedWorld

log = logging.getLogger(__name__)

LEVEL_OFF, LEVEL_FULL = 0.0, 100.0


class ActuatorError(Exception):
    """An actuator could not be set up or set; the message says which and why."""


class ActuatorDriver:
    def set_level(self, level: float) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Let go of the hardware (pins go back to their safe state)."""


class SimulatedActuator(ActuatorDriver):
    def __init__(self, actuator: ActuatorConfig, *, world: SimulatedWorld):
        self.key, self.kind, self.world = actuator.key, actuator.kind, world

    def set_level(self, level: float) -> None:
        self.world.actuator_set(self.key, self.kind, level)


def _gpiozero(actuator: ActuatorConfig):
    try:
        return importlib.import_module("gpiozero")
    except ImportError:
        raise ActuatorError(
            f"Actuator '{actuator.key}' uses the {actuator.driver} driver, which needs the Python package "
            "'gpiozero': pip install gpiozero"
        ) from None


def _pin(actuator: ActuatorConfig) -> Any:
    pin = actuator.options.get("pin")
    if pin is None or isinstance(pin, bool) or not isinstance(pin, (int, str)):
        raise ActuatorError(
            f"Actuator '{actuator.key}' uses the {actuator.driver} driver and needs options.pin, "
            'the GPIO pin it is wired to (such as 17 or "GPIO17").'
        )
    return pin


def _active_high(actuator: ActuatorConfig) -> bool:
    value = actuator.options.get("active_high", True)
    if not isinstance(value, bool):
        raise ActuatorError(f"Actuator '{actuator.key}': options.active_high must be true or false.")
    return value


def _device(actuator: ActuatorConfig, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except Exception as error:  # gpiozero raises many types (no pin factory, pin in use, ...)
        raise ActuatorError(
            f"Actuator '{actuator.key}' ({actuator.driver} on pin {actuator.options.get('pin')}) cannot be set up: "
            f"{error or type(error).__name__}"
        ) from None


class GpioRelayDriver(ActuatorDriver):
    """A relay (or MOSFET) on a GPIO pin: on or off. Options: pin, active_high (default true; false
    for the common relay boards that switch on when the pin is low)."""

    def __init__(self, actuator: ActuatorConfig):
        if actuator.dimmable:
            raise ActuatorError(
                f"Actuator '{actuator.key}' is dimmable, but a relay only switches on and off: use gpio_pwm."
            )
        pin, active_high = _pin(actuator), _active_high(actuator)  # the file's mistakes first
        gpiozero = _gpiozero(actuator)
        self.device = _device(
            actuator, lambda: gpiozero.OutputDevice(pin, active_high=active_high, initial_value=False)
        )

    def set_level(self, level: float) -> None:
        if level > LEVEL_OFF:
            self.device.on()
        else:
            self.device.off()

    def close(self) -> None:
        self.device.close()


class GpioPwmDriver(ActuatorDriver):
    """A dimmer driven by PWM on a GPIO pin (an LED driver's PWM input, a fan's). Options: pin,
    active_high (default true), frequency in Hz (default 100)."""

    def __init__(self, actuator: ActuatorConfig):
        pin, active_high = _pin(actuator), _active_high(actuator)  # the file's mistakes first
        frequency = actuator.options.get("frequency", 100)
        if isinstance(frequency, bool) or not isinstance(frequency, (int, float)) or frequency <= 0:
            raise ActuatorError(f"Actuator '{actuator.key}': options.frequency must be a positive number of Hz.")
        gpiozero = _gpiozero(actuator)
        self.device = _device(
            actuator,
            lambda: gpiozero.PWMOutputDevice(pin, active_high=active_high, initial_value=0, frequency=frequency),
        )

    def set_level(self, level: float) -> None:
        self.device.value = max(LEVEL_OFF, min(LEVEL_FULL, level)) / LEVEL_FULL

    def close(self) -> None:
        self.device.close()


DRIVERS: dict[str, Callable[..., ActuatorDriver]] = {
    "simulated": SimulatedActuator,
    "gpio_relay": GpioRelayDriver,
    "gpio_pwm": GpioPwmDriver,
}


def driver_for(actuator: ActuatorConfig, *, world: SimulatedWorld) -> ActuatorDriver:
    if actuator.driver == "simulated":
        return SimulatedActuator(actuator, world=world)
    try:
        make = DRIVERS[actuator.driver]
    except KeyError:
        raise ActuatorError(
            f"Actuator '{actuator.key}' asks for driver '{actuator.driver}'; known drivers: {', '.join(DRIVERS)}."
        ) from None
    return make(actuator)


class ActuatorSet:
    """The kit's actuators and the level each was last set to. One that cannot be set up is
    reported and left out (`failures` says why); setting one that fails is logged, retried at the
    next change, and its level is not claimed."""

    def __init__(
        self,
        actuators: list[ActuatorConfig],
        *,
        world: SimulatedWorld | None = None,
        make_driver: Callable[[ActuatorConfig], ActuatorDriver] | None = None,
    ):
        world = world or SimulatedWorld()
        make_driver = make_driver or (lambda actuator: driver_for(actuator, world=world))
        self.configs = {actuator.key: actuator for actuator in actuators}
        self.drivers: dict[str, ActuatorDriver] = {}
        self.failures: dict[str, str] = {}
        self.levels: dict[str, float] = {}
        for actuator in actuators:
            try:
                self.drivers[actuator.key] = make_driver(actuator)
            except Exception as error:  # a broken actuator must not stop the kit
                self._fail(actuator.key, str(error) or f"Actuator '{actuator.key}': {type(error).__name__}")

    def working(self, key: str) -> bool:
        return key in self.drivers

    def set(self, key: str, level: float) -> bool:
        """Set `key` to `level` (0-100) if it is not there already; False if it failed."""
        driver = self.drivers.get(key)
        if driver is None:
            return False
        if self.levels.get(key) == level:
            return True
        try:
            driver.set_level(level)
        except Exception as error:  # a broken actuator must not stop the kit
            self.levels.pop(key, None)
            self._fail(key, f"Actuator '{key}' cannot be set to {_plain(level)}: {error or type(error).__name__}")
            return False
        log.info("Actuator %s: level %s (was %s)", key, _plain(level), _plain(self.levels.get(key)))
        self.levels[key] = level
        self.failures.pop(key, None)
        return True

    def close(self) -> None:
        """Switch everything off and let go of the hardware: nothing runs unwatched once the
        agent has stopped (a heater left on could cook the plants)."""
        for key, driver in self.drivers.items():
            try:
                driver.set_level(LEVEL_OFF)
                driver.close()
            except Exception as error:  # closing what is broken anyway
                log.warning("Actuator %s could not be switched off: %s", key, error)

    def _fail(self, key: str, problem: str) -> None:
        if self.failures.get(key) != problem:
            log.warning("%s", problem)
        self.failures[key] = problem


def _plain(level: float | None) -> str:
    if level is None:
        return "unknown"
    return str(int(level)) if float(level).is_integer() else str(level)
