"""hercc: the Hercules network compiler."""

__version__ = "0.1.0"
