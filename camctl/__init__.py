"""camctl: camera stream manager for small security installations."""

__version__ = "0.1.0"
