"""Two query nodes on one SQLite file: a stale node never answers from its cache past the
freshness bound (see tests/freshness_cases.py)."""

from __future__ import annotations

import pytest
from freshness_cases import CASES, check_fresh_find_asks_no_database, two_nodes

from identity_service.index import IndexFollower


@pytest.mark.parametrize("mode", ["poller", "stale-node", "unobserved"])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__.removeprefix("check_"))
def test_other_node_sees_the_change_within_the_bound(case, mode, tmp_path, monkeypatch):
    if mode == "unobserved":  # a follower that tells no observer: the caches read the log
        monkeypatch.setattr(
            IndexFollower, "observer", property(lambda _: None, lambda *_: None), raising=False
        )
    with two_nodes(None, tmp_path, poller=mode == "poller") as (writer, reader):
        case(writer, reader)


def test_a_warm_node_answers_from_memory(tmp_path):
    with two_nodes(None, tmp_path, poller=True) as (writer, reader):
        check_fresh_find_asks_no_database(writer, reader)
