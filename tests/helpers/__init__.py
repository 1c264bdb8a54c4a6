"""What several test modules share: small models and experts, mixer builders, random streams.

Not tests themselves (pytest collects only ``test_*.py``); test modules import from here, never
from each other.
"""
