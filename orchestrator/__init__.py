"""rio: the Remote Inspection Orchestrator."""

__version__ = "0.1.0"
__all__ = ["__version__"]
