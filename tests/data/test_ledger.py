"""The ledger adds up, refuses when it does not, and reads the same as JSON and as a table."""

import json

import pytest

from align2.data.ledger import Ledger


def test_counts_add_up_and_read_back():
    ledger = Ledger()
    ledger.keep(3)
    ledger.drop("below_answer_cut", 2)
    ledger.drop("duplicate_exact")
    ledger.quarantine("image_missing")
    ledger.check()
    assert (ledger.total, ledger.kept, ledger.n_dropped, ledger.n_quarantined) == (7, 3, 3, 1)
    data = json.loads(json.dumps(ledger.to_dict()))
    assert list(data["dropped"]) == ["below_answer_cut", "duplicate_exact"]  # sorted
    assert data == {
        "total": 7,
        "kept": 3,
        "dropped": {"below_answer_cut": 2, "duplicate_exact": 1},
        "quarantined": {"image_missing": 1},
    }
    rows = [line.rsplit(None, 1) for line in ledger.table().splitlines()]
    assert [(label.strip(), int(n)) for label, n in rows] == [
        ("input rows", 7),
        ("kept", 3),
        ("dropped: below_answer_cut", 2),
        ("dropped: duplicate_exact", 1),
        ("quarantined: image_missing", 1),
    ]


def test_a_row_unaccounted_for_is_refused():
    ledger = Ledger(total=5, kept=3)
    ledger.drop("over_budget")
    with pytest.raises(AssertionError, match="total 6 != kept 3 \\+ dropped 1 \\+ quarantined 0"):
        ledger.check()
