"""Loading the encoder prints no transformers warning about a loss the model never computes."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import server_child_env

# A fresh interpreter: transformers logs this warning once per process (warning_once), so a
# model loaded earlier in the test session would hide it here.
_LOAD = """
import logging
logging.basicConfig(level=logging.INFO)
from interest_server.model.encoder import TextEncoder
encoder = TextEncoder(runtime="torchscript")
encoder.warm()
print("runtime", encoder.runtime)
"""


def test_loading_the_encoder_prints_no_loss_type_warning() -> None:
    out = subprocess.run([sys.executable, "-c", _LOAD], capture_output=True, text=True,
                         timeout=300, env=server_child_env())
    assert out.returncode == 0, out.stderr[-3000:]
    # The torchscript trace is what read transformers' lazy `loss_function` property; the
    # check means nothing unless the trace actually ran.
    assert "runtime torchscript" in out.stdout, out.stdout + out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "loss_type" not in text and "ForCausalLMLoss" not in text, text[-3000:]
