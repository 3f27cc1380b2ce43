"""webstats: statistics pages for access logs and pen's live status."""
