"""What the host's kernel lets the local runtime hold, checked when a worker starts."""

from __future__ import annotations

from pathlib import Path

NEIGHBOUR_TABLE = Path("/proc/sys/net/ipv4/neigh/default/gc_thresh2")


def neighbour_table_warning(capacity: int, table: Path = NEIGHBOUR_TABLE) -> str | None:
    """Why this host may not reach `capacity` running workloads, or None.

    Each running workload's bridge holds an entry in the kernel's neighbour (ARP) table, and
    entries in use cannot be collected: past `gc_thresh2` the kernel logs `neighbor table
    overflow!` and new workloads' published ports do not answer (`bench/scale.py` stopped at
    512 on Debian's defaults)."""
    try:
        size = int(table.read_text())
    except (OSError, ValueError):
        return None  # not Linux, or no IPv4: nothing to say
    if size >= capacity:
        return None
    return (
        f"net.ipv4.neigh.default.gc_thresh2 is {size}: this host's neighbour table holds about "
        f"{size} running workloads, fewer than WAPI_SUPERVISION_CAPACITY ({capacity}); raise "
        "gc_thresh1/2/3 (docs/operations.md, 'Limits and isolation')"
    )
