"""The hostile suites' shared set-up (`kafkaml.tests.hostile`), as fixtures of these tests."""

from kafkaml.tests.hostile import data_dir, listening, other_listening

__all__ = ["data_dir", "listening", "other_listening"]
