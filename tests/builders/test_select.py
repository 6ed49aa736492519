"""Selection policies on small hand-made data, with exact expected kept ids."""

import numpy as np
import pytest

from align2.builders.select import (
    KEPT,
    Align2Selection,
    BudgetSelection,
    RandomSelection,
    ThresholdSelection,
    TopKSelection,
    reason_names,
    select,
    select_align2,
    select_budget,
    select_random,
    select_threshold,
    select_top_k,
)
from align2.builders.styler import STYLES, style_of


def kept(ids, reasons):
    return sorted(i for i, r in zip(ids, reasons, strict=True) if r == KEPT)


def test_align2_two_stages_per_type():
    ids = [f"c{i}" for i in range(10)] + [f"d{i}" for i in range(5)]
    types = ["conversation"] * 10 + ["detail"] * 5
    q = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0] + [0.1, 0.9, 0.5, 0.7, 0.3]
    a = [0.1, 0.9, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0] + [0.0, 0.2, 0.9, 0.8, 0.0]
    reasons = select_align2(ids, types, q, a, Align2Selection(question_ratio=0.5, answer_ratio=0.4))
    # conversation: top 5 by q = c0..c4; top round(0.4*5)=2 of those by a = c1, c2.
    # detail: top round(2.5)=3 by q = d1, d3, d2; top round(1.2)=1 by a = d2.
    assert kept(ids, reasons) == ["c1", "c2", "d2"]
    names = reason_names(reasons)
    assert names[ids.index("c0")] == "below_answer_cut"
    assert names[ids.index("c9")] == "below_question_cut"
    assert names[ids.index("d0")] == "below_question_cut"
    assert names[ids.index("c1")] is None


def test_ties_break_by_id_whatever_the_input_order():
    ids = ["b", "a", "d", "c"]
    reasons = select_top_k(ids, [1.0, 1.0, 1.0, 1.0], TopKSelection(k=2))
    assert kept(ids, reasons) == ["a", "b"]
    ids2, scores2 = list(reversed(ids)), [1.0] * 4
    assert kept(ids2, select_top_k(ids2, scores2, TopKSelection(k=2))) == ["a", "b"]


def test_arrow_columns_select_what_lists_do():
    import pyarrow as pa

    ids = [f"r{i}" for i in (5, 1, 4, 2, 3, 0)]
    types = ["a", "b", "a", "b", "a", "b"]
    scores = np.array([0.5, 0.5, 0.1, 0.9, 0.5, 0.5], dtype=np.float32)
    columns = {"id": ids, "type": types, "style": types, "question_score": scores,
               "answer_score": scores, "answer_min_score": scores}  # fmt: skip
    arrow = {**columns, **{k: pa.chunked_array([columns[k]]) for k in ("id", "type", "style")}}
    for policy in (Align2Selection(0.7, 0.7), BudgetSelection(budget=3), TopKSelection(k=2)):
        assert select(policy, arrow).tolist() == select(policy, columns).tolist()
    assert kept(ids, select(TopKSelection(k=2), arrow)) == ["r0", "r2"]  # r0 wins the 0.5 tie


def test_threshold_and_top_k():
    ids = ["a", "b", "c", "d"]
    scores = [0.2, 0.9, 0.5, 0.7]
    assert kept(ids, select_threshold(scores, ThresholdSelection(min_score=0.5))) == ["b", "c", "d"]
    assert kept(ids, select_top_k(ids, scores, TopKSelection(k=2))) == ["b", "d"]
    assert reason_names(select_threshold(scores, ThresholdSelection(0.5)))[0] == "below_threshold"


def test_random_is_seeded_and_independent_of_input_order():
    ids = [f"x{i:02d}" for i in range(20)]
    first = kept(ids, select_random(ids, RandomSelection(budget=5, seed=3)))
    assert len(first) == 5
    assert first == kept(ids[::-1], select_random(ids[::-1], RandomSelection(budget=5, seed=3)))
    assert first != kept(ids, select_random(ids, RandomSelection(budget=5, seed=4)))
    with pytest.raises(ValueError, match="exactly one of `budget`"):
        select_random(ids, RandomSelection())


def budget(ids, scores, styles, policy, capabilities=None, types=None, question=None):
    """`select_budget` without the question cut unless a test gives one."""
    types = types or ["t"] * len(ids)
    question = question or [0.0] * len(ids)
    return select_budget(ids, types, question, scores, styles, policy, capabilities)


def test_budget_visits_small_style_bins_first_and_carries_shortfall():
    # 1 "yes/no" row, 2 "comparison", 6 "short description"; budget 6 over 3 bins, quota
    # 6 // 3 = 2: yes/no has 1 (debt 1), comparison takes min(3, 2) = 2 (debt 1), short
    # description its best min(3, 6) = 3.
    ids = [f"i{i}" for i in range(9)]
    styles = ["yes/no", "comparison", "comparison"] + ["short description"] * 6
    scores = [0.1, 0.2, 0.3, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    policy = BudgetSelection(budget=6, question_share=1.0, candidate_share=1.0)
    assert kept(ids, budget(ids, scores, styles, policy)) == ["i0", "i1", "i2", "i3", "i4", "i5"]
    # Budget 5: quota 5 // 3 = 1 per bin (i0, i2, i3), then a second round of 2 over the two
    # bins left: i1, i4.
    policy = BudgetSelection(budget=5, question_share=1.0, candidate_share=1.0)
    assert kept(ids, budget(ids, scores, styles, policy)) == ["i0", "i1", "i2", "i3", "i4"]


CAPABILITY_IDS = list("abcdefgh")
CAPABILITY_SCORES = {  # mmSSR-style 0-5 ratings; NaN: no score
    "ocr": [5, 4, 0, 0, np.nan, 0, 0, 0],
    "spatial": [1, 1, 5, 4, 3, 2, 1, 0],
}
CAPABILITY_STYLES = ["yes/no", "yes/no, comparison", "comparison", "short description",
                     "short description", "yes/no", "comparison", "yes/no"]  # fmt: skip


def test_budget_round_robins_capabilities_over_multi_label_styles():
    ids, styles = CAPABILITY_IDS, CAPABILITY_STYLES
    caps = {k: np.array(v, dtype=np.float32) for k, v in CAPABILITY_SCORES.items()}
    policy = BudgetSelection(budget=5, threshold=0, question_share=1.0, candidate_share=1.0)
    reasons = budget(ids, [0.0] * 8, styles, policy, caps)
    # Round 1, share 5 // 2 = 2 each. ocr (a, b above 0): bins comparison {b} then yes/no
    # {a, b}, quota 1: b, then a (b left every bin when chosen). spatial (c-g above 0): bins
    # yes/no {f}, comparison {c, g}, short description {d, e}, quota max(2 // 3, 1) = 1: f,
    # then c (its best), and the share is met. Round 2, share max(1 // 2, 1) = 1: ocr has
    # nothing left and leaves; spatial: comparison {g} is the smaller bin: g, not d (4).
    assert kept(ids, reasons) == ["a", "b", "c", "f", "g"]
    names = dict(zip(ids, reason_names(reasons), strict=True))
    assert names["h"] == "below_threshold" and names["d"] == names["e"] == "over_budget"


def test_budget_reports_a_shortfall_when_every_capability_runs_dry():
    ids, styles = CAPABILITY_IDS, CAPABILITY_STYLES
    caps = {k: np.array(v, dtype=np.float32) for k, v in CAPABILITY_SCORES.items()}
    policy = BudgetSelection(budget=8, threshold=0, question_share=1.0, candidate_share=1.0)
    reasons = budget(ids, [0.0] * 8, styles, policy, caps)
    # h scores 0 on both: 7 rows can be kept, not 8 (mmSSR's loop divides by zero here).
    assert kept(ids, reasons) == list("abcdefg")


def test_budget_takes_candidates_only_from_the_question_models_cut():
    ids = [f"r{i}" for i in range(8)]
    types = ["x"] * 4 + ["y"] * 4
    question = [0.9, 0.8, 0.1, 0.0, 0.2, 0.7, 0.6, 0.1]
    answer = [0.1, 0.2, 0.9, 0.9, 0.9, 0.3, 0.4, 0.9]  # fine answers to poor questions
    policy = BudgetSelection(budget=3, question_share=0.5, candidate_share=0.25)
    reasons = budget(ids, answer, ["yes/no"] * 8, policy, types=types, question=question)
    # Per type the best half by question: r0, r1 and r5, r6; the best max(3, 2) of those by
    # answer are the candidates (r0 is not); one style bin takes them all.
    assert kept(ids, reasons) == ["r1", "r5", "r6"]
    names = reason_names(reasons)
    assert [names[i] for i in (2, 3, 4, 7)] == ["below_question_cut"] * 4
    assert names[0] == "below_answer_cut"


def test_budget_balances_styles_among_the_best_share_only():
    # A small bin of poor rows ("yes/no") is not filled just because it is small: with the
    # best half as candidates (5 of 10), it offers one row; the rest of the budget comes from
    # the large bin's best.
    ids = [f"i{i}" for i in range(10)]
    styles = ["yes/no"] * 3 + ["short description"] * 7
    scores = [0.6, 0.1, 0.0, 0.9, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2]
    policy = BudgetSelection(budget=4, question_share=1.0, candidate_share=0.5)
    assert kept(ids, budget(ids, scores, styles, policy)) == ["i0", "i3", "i4", "i5"]
    reasons = reason_names(budget(ids, scores, styles, policy))
    assert reasons[1] == "below_answer_cut" and reasons[6] == "over_budget"
    balanced = BudgetSelection(budget=4, question_share=1.0, candidate_share=1.0)
    assert kept(ids, budget(ids, scores, styles, balanced)) == ["i0", "i1", "i3", "i4"]
    # Never fewer candidates than the budget.
    policy = BudgetSelection(budget=8, question_share=1.0, candidate_share=0.5)
    everything = budget(ids, scores, styles, policy)
    assert len(kept(ids, everything)) == 8


def test_budget_keeps_the_same_rows_whatever_the_input_order():
    rng = np.random.default_rng(0)
    n = 2000
    ids = [f"x{i:05d}" for i in range(n)]
    styles = [["yes/no", "comparison", "yes/no, comparison", "short description"][i % 4]
              for i in range(n)]  # fmt: skip
    caps = {c: rng.integers(0, 6, n).astype(np.float32) for c in ("a", "b", "c")}
    scores, question = rng.standard_normal(n), rng.standard_normal(n)
    policy = BudgetSelection(ratio=0.3, threshold=0)
    first = kept(ids, budget(ids, scores, styles, policy, caps, question=list(question)))
    assert len(first) == 600
    order = rng.permutation(n)
    shuffled = budget(
        [ids[i] for i in order], scores[order], [styles[i] for i in order], policy,
        {c: v[order] for c, v in caps.items()}, question=list(question[order]),
    )  # fmt: skip
    assert kept([ids[i] for i in order], shuffled) == first


@pytest.mark.parametrize(
    "question, answer, style",
    [
        ("<image>\nWhich is it? A. cat B. dog", "A", "multi-choice"),
        ("<image>\nWhere is the cup?", "The cup is at [0.10, 0.22, 0.35, 0.40].", "coordinate"),
        ("<image>\nIs there a red shape?", "No.", "yes/no"),
        ("What color is the shape?\n<image>", "Red.", "word/short-phrase"),
        (
            "<image>\nDescribe the image briefly.",
            "A red circle on a light background.",
            "short description",
        ),
        ("<image>\nDescribe the image in detail.", " ".join(["word"] * 60), "detailed description"),
        (
            "<image>\nWhat is the difference between the two cars?",
            "One is red, one is blue.",
            "comparison",
        ),
        (
            "<image>\nWhy is the man smiling?",
            "He is holding a prize, so he is probably happy because he won.",
            "chain-of-thought",
        ),
        ("<image>\nAnswer in one word: what animal is this?", "Dog", "specified style"),
    ],
)
def test_styler_covers_all_nine_styles(question, answer, style):
    assert style in STYLES
    assert (
        style_of([{"from": "human", "value": question}, {"from": "gpt", "value": answer}]) == style
    )
