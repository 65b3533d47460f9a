"""Two query nodes on one Postgres database: a stale node never answers from its cache past
the freshness bound (see tests/freshness_cases.py)."""

from __future__ import annotations

import pytest
from freshness_cases import CASES, check_fresh_find_asks_no_database, two_nodes

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("poller", [True, False], ids=["poller", "stale-node"])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__.removeprefix("check_"))
def test_other_node_sees_the_change_within_the_bound(case, poller, postgres_url, tmp_path):
    with two_nodes(postgres_url, tmp_path, poller) as (writer, reader):
        case(writer, reader)


def test_a_warm_node_answers_from_memory(postgres_url, tmp_path):
    with two_nodes(postgres_url, tmp_path, poller=True) as (writer, reader):
        check_fresh_find_asks_no_database(writer, reader)
