"""What the kit registry tells other apps, without importing them."""

from django.dispatch import Signal

# Sent with `kit` after a change of the kit's time zone, inside the change's transaction: the
# kit runs its actuator schedules on that clock, so control/ sends it the configuration again.
kit_time_zone_changed = Signal()
