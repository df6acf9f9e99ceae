"""The torch_threads setting: 0 leaves torch's thread count alone, N > 0 pins it at start."""

from __future__ import annotations

import argparse

import pytest
import redis
import torch
from interest_server import config
from interest_server.api.app import create_server
from interest_server.model.encoder import TextEncoder

from .conftest import settings_for


def test_flag_and_default() -> None:
    assert config.Settings().torch_threads == 0
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    assert config.from_args(parser.parse_args(["--torch-threads", "1"])).torch_threads == 1
    assert "PyTorch intra-op threads" in parser.format_help()


@pytest.mark.parametrize(("setting", "pinned"), [(0, False), (1, True)])
def test_create_server_applies_torch_threads(redis_client: redis.Redis, redis_server: str,
                                             encoder: TextEncoder, setting: int,
                                             pinned: bool) -> None:
    before = torch.get_num_threads()
    sentinel = 3 if before != 3 else 4  # a count no setting here would produce
    torch.set_num_threads(sentinel)
    try:
        running = create_server(settings_for(redis_server, torch_threads=setting),
                                encoder=encoder)
        try:
            assert torch.get_num_threads() == (1 if pinned else sentinel)
        finally:
            running.stop(grace_s=0.5)
    finally:
        torch.set_num_threads(before)
