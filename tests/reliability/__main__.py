"""``python -m tests.reliability``: print the reliability suite's counts by area."""

import jax

from tests.reliability._tally import table

jax.config.update("jax_enable_x64", True)
print(table())
