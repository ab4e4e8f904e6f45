"""The package version (one place, read by the package and the Port user agent)."""

__version__ = "0.1.0"
