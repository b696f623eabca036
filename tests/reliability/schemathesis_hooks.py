"""schemathesis hooks of tests/reliability/test_openapi_conformance.py (loaded by SCHEMATHESIS_HOOKS)."""

from __future__ import annotations

import schemathesis

# Production may be resampled to 10 million rows, and every later evaluation and check reads it:
# that is the scale benchmark's business (bench p4), not an input test's.
MAX_FUZZED_SIZE = 2000


@schemathesis.hook
def before_call(context, case, kwargs):
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("size"), int) and body["size"] > MAX_FUZZED_SIZE:
        body["size"] = MAX_FUZZED_SIZE
