"""TLS probes: protocol versions, cipher suites, the certificate and sslyze's vulnerability tests,
summarised per port with a grade in the spirit of the SSL Labs rating guide.

The package's layers, each usable on its own: :mod:`.model` (what a scan saw, iotrate's own
values), :mod:`.grading` (the SSL Labs-style grade, its caps a data table), :mod:`.findings`
(checks and the per-port summary, pure functions of a model), :mod:`.engine` (the sslyze
adapter and its threading) and :mod:`.probes` (the two probes the registry finds).
"""
