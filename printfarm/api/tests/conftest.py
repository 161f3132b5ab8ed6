"""Each test gets its own files directory, so what one stores another doesn't see."""

import pytest


@pytest.fixture(autouse=True)
def files_dir(settings, tmp_path):
    settings.PRINTFARM_FILES_DIR = tmp_path / "files"
    return settings.PRINTFARM_FILES_DIR
