"""The ledger: every input row ends kept, dropped (with a reason) or quarantined (with a reason).

Counts are data, and `check` proves they add up before anything is published.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Ledger:
    total: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    quarantined: Counter = field(default_factory=Counter)

    def keep(self, n: int = 1) -> None:
        self.total += n
        self.kept += n

    def drop(self, reason: str, n: int = 1) -> None:
        self.total += n
        self.dropped[reason] += n

    def quarantine(self, reason: str, n: int = 1) -> None:
        self.total += n
        self.quarantined[reason] += n

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def n_quarantined(self) -> int:
        return sum(self.quarantined.values())

    def check(self) -> None:
        """Raise if some row is unaccounted for."""
        accounted = self.kept + self.n_dropped + self.n_quarantined
        if accounted != self.total:
            raise AssertionError(
                f"ledger does not add up: total {self.total} != kept {self.kept} + dropped "
                f"{self.n_dropped} + quarantined {self.n_quarantined}"
            )

    def to_dict(self) -> dict:
        return {
            "total": self.total,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "quarantined": dict(sorted(self.quarantined.items())),
        }

    def table(self) -> str:
        """A plain-text table for terminals and logs."""
        rows = [("input rows", self.total), ("kept", self.kept)]
        rows += [(f"dropped: {r}", n) for r, n in sorted(self.dropped.items())]
        rows += [(f"quarantined: {r}", n) for r, n in sorted(self.quarantined.items())]
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {n:>8}" for label, n in rows)
