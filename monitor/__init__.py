"""readiness: tells an ICT committee, every minute and with proof, whether each election site is ready."""

__version__ = "0.1.0"
