"""`python -m mlcode_executor`: serve the executor over HTTP with settings from the environment."""

from __future__ import annotations

from mlcode_executor.service import make_server
from mlcode_executor.settings import ExecutorSettings


def main() -> None:
    settings = ExecutorSettings()
    server = make_server(settings)
    print(f"mlcode_executor listening on {settings.host}:{settings.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
