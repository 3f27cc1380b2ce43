"""penlogd: receive pen's records and the web servers' log lines over UDP, write one joined log."""
