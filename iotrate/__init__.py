"""iotrate: a cyber-security rating (A-G label) for connected devices."""

__version__ = "0.1.0"
