"""DynamoDB's size rules, as it bills writes: pure functions on items in DynamoDB's JSON form
({"S": ...}, {"N": ...}, {"M": {...}}), with no Django and no client, so that the benchmarks
count write units by the same rules as the adapter (telemetry/dynamodb.py)."""

import math
from decimal import Decimal


def item_size(item: dict) -> int:
    """An item's size by DynamoDB's rules: attribute names plus values; a number takes one byte
    per two significant digits plus one; a map 3 bytes plus one per element."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def value_size(value: dict) -> int:
    ((kind, content),) = value.items()
    if kind == "S":
        return len(content.encode())
    if kind == "N":
        digits = Decimal(content).normalize().as_tuple().digits
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(name.encode()) + 1 + value_size(v) for name, v in content.items())
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in content)
    return sum(len(v.encode()) if isinstance(v, str) else len(v) for v in content)  # sets


def write_units(item: dict) -> int:
    """What writing `item` costs: one unit per started KB, one at the least."""
    return max(1, math.ceil(item_size(item) / 1024))
