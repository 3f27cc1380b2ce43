"""pen's transports: bytes in, bytes out (epoll for plain TCP, asyncio for TLS, UDP)."""
