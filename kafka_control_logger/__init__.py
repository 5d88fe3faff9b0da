"""The control logger: records every control message of the control topic as a datasource of
its deployment in the backend (run it with `python -m kafka_control_logger`)."""
