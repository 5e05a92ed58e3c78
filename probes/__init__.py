"""Security probes, installed as ``iotrate.probes`` (one module per probe family)."""
