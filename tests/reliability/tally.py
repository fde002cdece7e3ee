"""The suite's counters, printed at its end by the terminal summary of tests/reliability/conftest.py."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import grpc


@dataclass
class Tally:
    """Requests and how they ended, over every test of the reliability suite."""

    sent: int = 0
    answered: int = 0  # status OK
    rejected: Counter[str] = field(default_factory=Counter)  # by status code name
    lost: int = 0  # no status at all within the test's patience
    wrong: int = 0  # OK with a translation that is not the engine's answer, or an unexpected status
    bad_inputs: int = 0
    crashes: int = 0  # the server stopped serving (a health check or a normal request failed)

    def count(self, status: grpc.StatusCode) -> None:
        """One more request sent, ended with `status`."""
        self.sent += 1
        if status == grpc.StatusCode.OK:
            self.answered += 1
        else:
            self.rejected[status.name] += 1

    def lines(self) -> tuple[str, str]:
        """The counts, then what must be 0."""
        rejected = ", ".join(f"{code} {n}" for code, n in sorted(self.rejected.items())) or "none"
        return (
            f"requests sent {self.sent}, answered {self.answered}, rejected {sum(self.rejected.values())}"
            f" ({rejected}); bad inputs tried {self.bad_inputs}",
            f"lost {self.lost}, wrong {self.wrong}, crashes {self.crashes} (each must be 0)",
        )


TALLY = Tally()
