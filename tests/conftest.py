"""Fixtures shared by the tests under tests/."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one thread: tiny models and tensors gain nothing from two,
    and wait much longer on a busy machine. Results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
