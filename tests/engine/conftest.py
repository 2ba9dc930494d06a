"""Fixtures of the engine tests."""

import pytest
import torch


@pytest.fixture
def single_thread():
    """Tiny models train fastest on one thread (and several threads crawl on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
