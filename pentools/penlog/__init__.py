"""penlog: send each access-log line read on stdin to penlogd as one UDP datagram."""
