"""Herald: self-hosted multi-channel notifications."""

__version__ = "0.1.0"
