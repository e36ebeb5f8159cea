"""Shared test fixtures."""

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tiny torch workloads on one thread, restoring the count afterwards.

    On a shared 2-core machine a second OpenMP thread only adds contention: tiny forward
    passes were measured 50-100x slower with two threads under load.
    """
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
