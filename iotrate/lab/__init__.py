"""The reference lab: an emulated home network of real daemons in network namespaces."""
