from pathlib import Path

from runtimes.local.host_limits import neighbour_table_warning


def test_a_neighbour_table_smaller_than_the_capacity_is_named(tmp_path: Path) -> None:
    table = tmp_path / "gc_thresh2"
    table.write_text("512\n")
    warning = neighbour_table_warning(1000, table)
    assert warning is not None
    assert "gc_thresh2 is 512" in warning and "WAPI_SUPERVISION_CAPACITY (1000)" in warning


def test_a_table_large_enough_or_unreadable_says_nothing(tmp_path: Path) -> None:
    table = tmp_path / "gc_thresh2"
    table.write_text("8192\n")
    assert neighbour_table_warning(1000, table) is None
    assert neighbour_table_warning(1000, tmp_path / "missing") is None
