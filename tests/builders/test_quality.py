"""The trade-off curve on hand-made scores with known defects."""

import numpy as np

from align2.builders.quality import TRADEOFF_BUDGETS, tradeoff_report


def test_tradeoff_counts_defects_kept_at_every_budget():
    ids = [f"r{i}" for i in range(10)]
    answer = np.array([0.9, 0.1, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.0], dtype=np.float32)
    columns = {
        "id": ids,
        "type": ["t"] * 10,
        "style": ["yes/no"] * 10,
        "question_score": np.linspace(1, 0, 10, dtype=np.float32),
        "answer_score": answer,
        "answer_min_score": answer,
        "capabilities": {},
    }
    truth = {i: (["refusal"] if i in ("r0", "r1") else []) for i in ids}
    report = tradeoff_report(ids, columns, truth)
    assert report["budgets"] == list(TRADEOFF_BUDGETS) and report["random_defect_rate"] == 0.2
    top_k = report["policies"]["top-k"]
    # 5% (half a row, rounded up) and 10% keep the best answer, r0 (defective); 20%: r0, r2;
    # 30%: + r3; 50%: + r4, r5.
    assert [p["kept"] for p in top_k] == [1, 1, 2, 3, 5]
    assert [p["defect_rate"] for p in top_k] == [1.0, 1.0, 0.5, 0.3333, 0.2]
    assert top_k[1]["ratio"] == 5.0
    budget = report["policies"]["budget"]
    assert [p["kept"] for p in budget] == [1, 1, 2, 3, 5]  # halves round up
    assert budget[0]["defect_rate"] == 1.0  # r0: the best answer among the question cut
