"""Local development environment: the control plane and the emulated AWS accounts.

Nothing in the operator imports this package; it serves the tests, the sandbox
and the benchmark only.
"""
