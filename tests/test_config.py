"""Configuration parsing shared by the services."""

from __future__ import annotations

import pytest

from shared.config import ConfigError, get_json_list


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1002", ("1002",)),
        ("1001, 1002", ("1001", "1002")),
        ('["1001", "1002"]', ("1001", "1002")),
        ("[1002]", ("1002",)),
        ("", ()),
    ],
)
def test_id_lists_accept_one_id_many_ids_or_json(raw: str, expected: tuple[str, ...]) -> None:
    """Allow-lists take a single id, comma-separated ids or a JSON array of strings or numbers."""
    assert get_json_list({"HMR_APPROVER_IDS": raw}, "HMR_APPROVER_IDS") == expected


@pytest.mark.parametrize("raw", ["[1002", '[{"id": 1}]', "[true]"])
def test_broken_json_lists_are_config_errors(raw: str) -> None:
    """A value that starts like JSON but is not a list of ids names the variable."""
    with pytest.raises(ConfigError, match="HMR_APPROVER_IDS"):
        get_json_list({"HMR_APPROVER_IDS": raw}, "HMR_APPROVER_IDS")
