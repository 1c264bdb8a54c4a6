"""What a good round trip is worth on this machine: PROVEN with a sandbox, DECODED without one."""

import pytest

from pgolf_core.proof.sandbox import sandbox_status

SANDBOX = sandbox_status()
PROOF_LEVEL = "proven" if SANDBOX["available"] else "decoded"
needs_sandbox = pytest.mark.skipif(not SANDBOX["available"], reason=f"no proof sandbox here: {SANDBOX['reason']}")
