"""ptlab: decide which post-training algorithm to use at your scale, in your domain."""

__version__ = "0.1.0"
