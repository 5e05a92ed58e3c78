"""Renderers from a scan result to text or bytes, installed as ``iotrate.reports``."""
