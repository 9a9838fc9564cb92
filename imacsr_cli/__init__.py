"""imacsr: experiment orchestrator and results database for iMacSR training."""

__version__ = "0.1.0"
