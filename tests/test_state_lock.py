"""One process per state folder: a second start on a folder in use stops with one line naming
the first's pid; the lock dies with its process, even by kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from ocean_trio import Integration, StartupError
from ocean_trio._state_lock import hold_state_folder
from ocean_trio.testing import make_settings, serve_integration

HOLDER = """
import sys, time
from pathlib import Path
from ocean_trio._state_lock import hold_state_folder
with hold_state_folder(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


async def test_a_second_app_on_the_same_state_folder_stops_naming_the_first(
    integration_root: Path, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    async with serve_integration(Integration(integration_root), settings):
        with pytest.raises(StartupError) as error:
            async with serve_integration(Integration(integration_root), settings):
                pass
        other = make_settings(tmp_path / "other")  # a folder of its own: fine
        async with serve_integration(Integration(integration_root), other):
            pass
    message = str(error.value)
    assert f"another ocean-trio process (pid {os.getpid()})" in message
    assert str(tmp_path / "state") in message
    assert "one process per state folder" in message
    # the first stopped: the folder is free again
    async with serve_integration(Integration(integration_root), settings):
        pass


async def test_the_lock_is_released_when_its_process_is_killed(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    holder = await trio.lowlevel.open_process(
        [sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        with trio.fail_after(30):
            assert (await holder.stdout.receive_some(16)).startswith(b"held")
        with (
            pytest.raises(StartupError, match=rf"\(pid {holder.pid}\)"),
            hold_state_folder(folder),
        ):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        with trio.fail_after(10):
            await holder.wait()
    with hold_state_folder(folder):
        assert (folder / "ocean-trio.lock").read_text().strip() == str(os.getpid())
