"""Single-threaded BLAS for the tiny linear algebra of meta-analytic fits.

The matrices of a meta-analysis are small (p x p, or one cluster's block): BLAS
threads only add wake-up latency, badly so on a busy machine. ``threadpoolctl``
limits are process-wide, so concurrent fits in threads must not each set and
restore them (one would restore the limit another set, leaving the process at
one thread). :func:`single_blas_thread` counts the fits in progress: the first
one limits BLAS to one thread, the last one restores the limits it found, under a
lock. Outside fits, the process's BLAS threading is never changed.
"""

import threading
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

_lock = threading.Lock()
_active = 0
_limiter = None


@contextmanager
def single_blas_thread():
    """Run the block with BLAS limited to one thread; restore the limits after."""
    global _active, _limiter
    with _lock:
        if _active == 0:
            _limiter = threadpool_limits(limits=1, user_api="blas")
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                _limiter.restore_original_limits()
                _limiter = None
