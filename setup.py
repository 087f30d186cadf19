"""The build step that puts the browser page's files into a wheel (pyproject.toml holds the
metadata): build_py writes pocketlm/runtime/webassets/ into the build folder from web/ with
web/tools/webassets.py, which git keeps no copy of. Editable installs skip it; there
runtime/web.py takes the files from web/ itself.
"""

import runpy
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

WEB = Path(__file__).resolve().parent / "web"


class BuildWithWebAssets(build_py):
    """build_py, then the page, the JavaScript package and onnxruntime-web's files."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        out = Path(self.build_lib) / "pocketlm" / "runtime" / "webassets"
        if out.exists():
            shutil.rmtree(out)
        write = runpy.run_path(str(WEB / "tools" / "webassets.py"))["write"]
        if not write(out, WEB):
            self.warn(f"no {WEB / 'node_modules'}: the wheel carries no onnxruntime-web files, "
                      f"so its `pocketlm web` needs --web DIR; run `npm ci` in web/ and rebuild")


setup(cmdclass={"build_py": BuildWithWebAssets})
