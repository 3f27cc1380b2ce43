"""pen: the TCP/UDP load balancer with client tracking and records for penlogd/mergelogs."""
