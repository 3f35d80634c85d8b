"""Hypothesis settings for the fuzz tests: small by default so CI stays fast, longer on request.

`MAILSTREAM_FUZZ_EXAMPLES` sets the examples per property (default 200; the SMTP dialogue runs a quarter of that,
each example being a real connection). Under CI=true the run is derandomized (the same examples every time);
`--hypothesis-seed=N` replays a local run; MAILSTREAM_FUZZ_SHRINK=0 skips shrinking (a failing socket dialogue
shrinks slowly). A long run:
`MAILSTREAM_FUZZ_EXAMPLES=5000 scripts/test.sh tests/ingest/test_hostile_parsing.py -p no:cacheprovider`.
Applied per test (not as a global profile, which would also change schemathesis' runs).
"""

import os

from hypothesis import HealthCheck, Phase, settings

EXAMPLES = int(os.environ.get("MAILSTREAM_FUZZ_EXAMPLES", "200"))
SHRINK = os.environ.get("MAILSTREAM_FUZZ_SHRINK", "1") == "1"


def fuzz(examples: int = EXAMPLES, *, shrink: bool = True) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,  # a shared 2-core machine: the bounds that matter are explicit in the tests
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        derandomize=os.environ.get("CI") == "true",
        database=None,  # no .hypothesis directory in the worktree
        print_blob=True,
        phases=tuple(Phase) if shrink and SHRINK else (Phase.explicit, Phase.generate),
    )
