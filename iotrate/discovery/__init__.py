"""Discovery: find the hosts on the targets and the services they expose."""
