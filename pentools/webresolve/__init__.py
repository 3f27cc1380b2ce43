"""webresolve and splitwr: host names for the client field of access logs, concurrently."""
