"""The inverse questions, answered by pricing many setups through the same model as ``fxmeter trace``:
which deployment (:mod:`.planner`, ``fxmeter plan``), how many replicas for a rate (:mod:`.fleet`),
and which setting explains a measured run (:mod:`.diagnose`, ``fxmeter diagnose``).

A layer above :mod:`fxmeter.api` (it prices a setup through ``api.request`` and checks its search against
it), below the command line.
"""
