import socket

import pytest
from conftest import NetworkAccessDenied


def test_non_loopback_connection_is_refused_before_any_packet() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(NetworkAccessDenied, match=r"only use 127\.0\.0\.1"):
            s.connect(("93.184.216.34", 443))
    finally:
        s.close()


def test_loopback_is_allowed() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.socket()
    try:
        client.connect(server.getsockname())
    finally:
        client.close()
        server.close()


def test_dns_lookups_of_outside_names_are_refused() -> None:
    with pytest.raises(NetworkAccessDenied, match=r"resolve 'api\.openai\.com'"):
        socket.getaddrinfo("api.openai.com", 443)
    assert socket.getaddrinfo("localhost", 80)
