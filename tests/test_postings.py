"""Postings and Matches: masks and position lists agree with plain set arithmetic, whichever
form a search combines or pages them in."""

from __future__ import annotations

import random

import pytest

from services.read_api.postings import NOTHING, Matches, Postings


def _random_positions(rng: random.Random, size: int, density: float) -> list[int]:
    return [p for p in range(size) if rng.random() < density]


@pytest.mark.parametrize("size", [1, 7, 8, 9, 64, 1_000, 5_003])
def test_mask_and_positions_describe_the_same_records(size: int) -> None:
    """Postings made from positions and from their mask agree on members, count and order."""
    rng = random.Random(size)
    for density in (0.0, 0.01, 0.3, 0.9, 1.0):
        positions = _random_positions(rng, size, density)
        from_list = Postings(positions)
        from_mask = Postings(mask=from_list.mask)
        assert from_mask.positions == positions
        assert len(from_mask) == len(from_list) == len(positions)
        assert from_list == from_mask
        kept = set(positions)
        for pos in (-1, 0, size // 2, size - 1, size, size + 70):
            assert (pos in from_list) == (pos in kept), pos
            assert (pos in Postings(mask=from_list.mask)) == (pos in kept), pos


@pytest.mark.parametrize(("offset", "limit"), [(0, 50), (0, 1), (3, 5), (17, 9), (900, 50)])
def test_a_window_of_a_mask_is_the_slice_of_its_positions(offset: int, limit: int) -> None:
    """A page read from a mask, shallow or deep, is the slice of the sorted positions."""
    rng = random.Random(offset * 31 + limit)
    for density in (0.02, 0.5, 1.0):
        positions = _random_positions(rng, 2_000, density)
        postings = Postings(mask=Postings(positions).mask)
        assert postings.window(offset, limit) == positions[offset : offset + limit]
    for limit in (0, -2):  # no page, whichever form the postings are in
        assert Postings(mask=0b1011).window(0, limit) == []
        assert Postings([0, 1, 3]).window(0, limit) == []
        assert Matches.of(10, [], []).window(0, limit) == []


def test_matches_follow_set_arithmetic_on_random_filters() -> None:
    """Every way filters combine (one alone, several, with and without exclusions, none)
    gives the total, page and membership a set computation gives."""
    rng = random.Random(16)
    size = 3_000
    pool = [Postings(_random_positions(rng, size, d)) for d in (0.05, 0.2, 0.5, 0.8)]
    pool.append(NOTHING)
    for _ in range(200):
        positive = rng.sample(pool, rng.randint(0, 3))
        excluded = rng.sample(pool, rng.randint(0, 2))
        if rng.random() < 0.3:
            positive.append(Postings.union(rng.sample(pool, 2)))
        expected = set(range(size))
        for p in positive:
            expected &= set(p.positions)
        for e in excluded:
            expected -= set(e.positions)
        want = sorted(expected)
        matches = Matches.of(size, positive, excluded)
        assert matches.total() == len(want)
        assert matches.all() == want
        offset, limit = rng.randint(0, 200), rng.randint(0, 60)
        assert matches.window(offset, limit) == want[offset : offset + limit]
        probe = rng.randrange(-2, size + 2)
        assert (probe in matches) == (probe in expected)


def test_one_filter_alone_pages_its_own_positions() -> None:
    """The common search (one filter) makes no mask: its page is a slice of the postings."""
    tag = Postings([2, 5, 9])
    matches = Matches.of(10, [tag], [NOTHING])
    assert matches.kept is tag
    assert matches.window(1, 5) == [5, 9]
    assert Matches.of(10, [], []).kept is None


def test_postings_are_made_from_one_form() -> None:
    """Postings come from positions or from a mask, never both or neither."""
    with pytest.raises(ValueError):
        Postings()
    with pytest.raises(ValueError):
        Postings([1], mask=2)
