"""What several tools share: records, access-log lines, the join engine, addresses, errors."""
