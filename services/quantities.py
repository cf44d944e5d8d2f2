"""Kubernetes-style quantities for memory: 512Mi, 2Gi, 16G, 1e9 or plain bytes."""

from __future__ import annotations

import re

_UNITS = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
}  # fmt: skip
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_bytes(value: int | float | str) -> int:
    """Bytes in a quantity; raises ValueError naming the accepted units."""
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError("must be positive")
        return int(value)
    match = _QUANTITY.match(value)
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"'{value}' is not a quantity like 512Mi, 2Gi or 16G")
    amount = float(match.group(1)) * _UNITS[match.group(2)]
    if amount <= 0:
        raise ValueError("must be positive")
    return int(amount)
