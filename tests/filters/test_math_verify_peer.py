"""Agreement with math-verify's own test cases (its sdist, downloaded from the registry at run
time into $R1DATA_CACHE_DIR/peer; nothing of it is committed). No download -> the test fails
with the reason, it never skips."""

import pytest

from bench.math_peer import VERSION, agreement, cases, sdist_tests

# Measured 258/274 = 94.2% on math-verify 0.9.0 (bench/math_peer.py). The remaining cases are
# documented gaps: math-verify's per-case float precision (0.33 vs 1/3 at 2 digits), answers
# it finds without any marker in rambling text, and its own quirks (1 - 1/e == 1 + 1/e); and
# one by design: "(9+1)" for gold 10, an unevaluated expression, is not a value here (it was
# 259 before that rule: filters/math.py _arithmetic).
FLOOR = 0.92


@pytest.mark.slow
def test_agreement_with_math_verify_cases():
    rows = cases(sdist_tests())
    assert len(rows) > 250, f"math-verify {VERSION} sdist tests were not found or not parsed"
    assert {f for f, *_ in rows} >= {"test_all.py", "test_numina_cases.py", "test_yujianll.py"}
    res = agreement(rows)
    print(f"\nmath-verify {VERSION} agreement: {res['agree']}/{res['cases']} = "
          f"{res['agreement']:.1%}")
    assert res["agreement"] >= FLOOR
