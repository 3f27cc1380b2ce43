"""pentools: a load balancer and the log tools that give a balanced farm one true access log."""

__version__ = "0.1.0"
