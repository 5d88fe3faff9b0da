"""The test plugin (`kafkaml.testing`) itself, run in a pytest session of its own."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# The inner session counts, once its fixtures are torn down, the Kafka clients still alive
# (unreachable ones too: no collection runs first).
CLIENT_COUNT = """
import gc

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient


def pytest_unconfigure(config):
    kinds = (Producer, Consumer, AdminClient)
    print("clients alive:", sum(type(thing) in kinds for thing in gc.get_objects()))
"""


def test_failed_tests_clients_are_let_go_of_when_the_sessions_broker_fixture_ends(
    pytester: pytest.Pytester, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKAML_TEST_BOOTSTRAP", kafka_bootstrap)  # this session's broker
    pytester.makeconftest(CLIENT_COUNT)
    pytester.makepyfile(
        test_fails="""
        def test_fails_holding_the_admin_client(kafka_admin, new_topic):
            new_topic()
            assert False

        def test_passes_after_it():
            pass
        """
    )

    done = pytester.runpytest_subprocess(
        "-p", "kafkaml.testing", "-p", "no:django", "-p", "no:cacheprovider", "-s",
        timeout=120,
    )  # fmt: skip

    done.assert_outcomes(failed=1, passed=1)
    done.stdout.fnmatch_lines(["clients alive: 0"])
