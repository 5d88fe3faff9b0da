pytest_plugins = ["kafkaml.testing"]
