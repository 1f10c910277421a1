"""Run a server in a background thread for the length of a ``with`` block."""

import contextlib
import threading

__all__ = ["serving"]


@contextlib.contextmanager
def serving(server, poll_interval=0.05):
    """Serve in a thread; on exit shut down, join the thread and close the server.

    Notebooks and tests need the serving loop out of the way of the client
    code.  shutdown() must come from another thread than serve_forever(),
    and server_close() only after the loop has stopped: this does both in
    the right order even when the block raises.  A short poll_interval keeps
    shutdown() quick (it waits for the loop's next turn).
    """
    thread = threading.Thread(target=server.serve_forever,
                              args=(poll_interval,), name="serve_forever")
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
