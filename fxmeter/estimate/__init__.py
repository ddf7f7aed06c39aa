"""estimate stage of fxmeter (see docs/architecture.md)."""
