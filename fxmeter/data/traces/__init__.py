"""Symbolic traces of the bundled models, built by ``python -m fxmeter.cost.ship``."""
