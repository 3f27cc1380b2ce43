"""penctl: send one command to a running pen's control port, print the reply."""
