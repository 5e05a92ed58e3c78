"""Protocol clients the probes speak through (HTTP, raw TCP/UDP, telnet, RTSP, SNMP) and the
default-credential list. Private: the probe registry does not look for probes here, and
nothing outside ``iotrate.probes`` should need them."""
