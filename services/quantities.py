"""Kubernetes-style quantities for memory: 512Mi, 2Gi, 16G or plain bytes, parsed exactly."""

from __future__ import annotations

import re
from fractions import Fraction

_UNITS = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
}  # fmt: skip
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_bytes(value: int | float | str) -> int:
    """Bytes in a quantity: a positive whole number of bytes (`0.5` or `1.5` bytes is not one,
    nor is a value that would silently round). Raises ValueError naming the accepted units."""
    if isinstance(value, bool):
        raise ValueError("is not a quantity")
    if isinstance(value, int | float):
        amount = Fraction(value)
    else:
        match = _QUANTITY.match(value)
        if not match or match.group(2) not in _UNITS:
            raise ValueError(f"'{value}' is not a quantity like 512Mi, 2Gi or 16G")
        amount = Fraction(match.group(1)) * _UNITS[match.group(2)]
    if amount <= 0:
        raise ValueError("must be positive")
    if amount.denominator != 1:
        raise ValueError(f"'{value}' is not a whole number of bytes")
    return int(amount)
