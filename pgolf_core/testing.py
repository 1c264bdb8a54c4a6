"""Contract checks (rules C1-C4 and no hypercompression) for plugin authors' own tests.

Each ``check_*`` function drives a component the way the evaluator does (spans in increasing order,
``tokens[:end]`` only), returns a dict of evidence when the rule holds, and raises ``AssertionError``
with the evidence when it does not::

    from pgolf_core.testing import audit_expert

    def test_my_expert_is_legal():
        audit_expert(lambda: MyExpert(1024), tokens)

This is the toolkit's public face: the checks are defined in ``pgolf_core.checks.contract``, where
``pgolf-core audit`` runs the very same functions.
"""

from .checks.contract import *  # noqa: F401,F403 (every public name of the contract checks)
