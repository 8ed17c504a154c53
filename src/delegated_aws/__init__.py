"""Kubernetes operator that turns delegated cross-account IAM roles into Secrets."""

__version__ = "0.1.0"
