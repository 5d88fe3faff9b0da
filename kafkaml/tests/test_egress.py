"""`kafkaml.egress` on its own: endpoints parsed as librdkafka reads a bootstrap list, and the
routes and /etc/hosts a job's sandbox gets for them (the routes at work: test_sandbox.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkaml.egress import EgressError, Endpoint, off_host, parse_endpoints, plan, url_endpoint

names = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True),
    st.ip_addresses().map(str),
)
endpoints = st.builds(Endpoint, names, st.integers(1, 65535))


@given(st.lists(endpoints, min_size=1, max_size=5))
def test_a_bootstrap_list_of_endpoints_parses_back_to_them(given_endpoints: list[Endpoint]) -> None:
    assert parse_endpoints(",".join(map(str, given_endpoints))) == given_endpoints


def test_entries_without_a_port_or_with_a_protocol_read_as_librdkafka_reads_them() -> None:
    servers = "broker-1, SASL_SSL://broker-2:9093,[::1],::1, [fe80::1]:9094"
    assert parse_endpoints(servers) == [
        Endpoint("broker-1", 9092), Endpoint("broker-2", 9093), Endpoint("::1", 9092),
        Endpoint("::1", 9092), Endpoint("fe80::1", 9094),
    ]  # fmt: skip
    with pytest.raises(EgressError, match="not host:port"):
        parse_endpoints("broker:http")


def test_names_get_addresses_of_their_own_and_loopback_literals_stay_as_they_are() -> None:
    routes = plan(
        [Endpoint("kafka-0.example", 9093), Endpoint("kafka-1.example", 9093),
         Endpoint("kafka-0.example", 9094), Endpoint("127.0.0.1", 8000),
         Endpoint("localhost", 8000), Endpoint("::1", 29092)]
    )  # fmt: skip
    listen = {(route.listen, route.to.port): str(route.to) for route in routes.routes}
    assert listen == {
        ("127.0.0.1", 8000): "127.0.0.1:8000",  # localhost:8000 is the same route
        ("::1", 29092): "[::1]:29092",
        ("127.77.0.1", 9093): "kafka-0.example:9093",
        ("127.77.0.1", 9094): "kafka-0.example:9094",
        ("127.77.0.2", 9093): "kafka-1.example:9093",
    }
    assert "127.77.0.1\tkafka-0.example\n127.77.0.2\tkafka-1.example\n" in routes.hosts
    assert "127.0.0.1\tlocalhost\n" in routes.hosts


def test_ip_addresses_off_the_loopback_are_added_to_the_sandboxs_loopback_once() -> None:
    routes = plan(
        [Endpoint("10.1.2.3", 9092), Endpoint("10.1.2.3", 9093), Endpoint("2001:db8::5", 443),
         Endpoint("127.0.0.1", 8000)]
    )  # fmt: skip
    assert routes.aliases == ("10.1.2.3", "2001:db8::5")
    assert [(r.listen, r.to.port) for r in routes.routes] == [
        ("10.1.2.3", 9092), ("10.1.2.3", 9093), ("127.0.0.1", 8000), ("2001:db8::5", 443),
    ]  # fmt: skip


def test_the_job_api_endpoint_is_the_urls_host_and_port() -> None:
    assert url_endpoint("http://127.0.0.1:31000/") == Endpoint("127.0.0.1", 31000)
    assert url_endpoint("https://kafkaml.example") == Endpoint("kafkaml.example", 443)


def test_brokers_a_user_names_on_this_machine_are_dropped_and_others_kept() -> None:
    """Literals only: resolving a name here could send a DNS query off the machine."""
    named = [Endpoint("127.0.0.1", 5432), Endpoint("::1", 8000), Endpoint("192.0.2.7", 9092)]
    assert off_host(named) == [Endpoint("192.0.2.7", 9092)]
