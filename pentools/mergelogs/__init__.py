"""mergelogs: join pen's log with the backends' access logs, offline."""
