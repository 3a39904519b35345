"""A local PEP 503 package index over a directory of wheels and sdists (`.tar.gz`), served on
127.0.0.1.

Poetry locks and installs from it exactly as from a remote simple index, so the tests use
Poetry's real repository, hashing and installer code paths without touching the network.
PEP 658 metadata files are served too, as PyPI does.
"""

from __future__ import annotations

import hashlib
import html
import re
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING
from typing import Any

from packaging.utils import canonicalize_name

if TYPE_CHECKING:
    from pathlib import Path

_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-.*)?\.whl$")
_SDIST = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)\.tar\.gz$")


class LocalIndex:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        handler = partial(_Handler, index=self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/simple/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def projects(self) -> dict[str, list[Path]]:
        found: dict[str, list[Path]] = {}
        for wheel in sorted(self.root.glob("*.whl")):
            match = _WHEEL.match(wheel.name)
            if match:
                found.setdefault(canonicalize_name(match["name"]), []).append(wheel)
        for sdist in sorted(self.root.glob("*.tar.gz")):
            match = _SDIST.match(sdist.name)
            if match:
                found.setdefault(canonicalize_name(match["name"]), []).append(sdist)
        return found


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, index: LocalIndex, **kwargs: Any) -> None:
        self.index = index
        super().__init__(*args, directory=str(index.root), **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/simple", "/simple/"):
            links = "".join(
                f'<a href="/simple/{name}/">{name}</a>\n' for name in self.index.projects()
            )
            return self._page(links)
        if path.startswith("/simple/"):
            name = canonicalize_name(path[len("/simple/") :].strip("/"))
            wheels = self.index.projects().get(name)
            if not wheels:
                return self.send_error(404)
            links = ""
            for wheel in wheels:
                digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
                metadata = ""
                if wheel.suffix == ".whl":  # PEP 658 metadata: wheels only, as on PyPI
                    meta = hashlib.sha256(_core_metadata(wheel)).hexdigest()
                    metadata = (
                        f' data-dist-info-metadata="sha256={meta}"'
                        f' data-core-metadata="sha256={meta}"'
                    )
                links += (
                    f'<a href="/files/{html.escape(wheel.name)}#sha256={digest}"'
                    f"{metadata}>{html.escape(wheel.name)}</a>\n"
                )
            return self._page(links)
        if path.startswith("/files/") and path.endswith(".metadata"):
            wheel = self.index.root / path[len("/files/") : -len(".metadata")]
            if not wheel.is_file():
                return self.send_error(404)
            return self._send(_core_metadata(wheel), "text/plain")
        if path.startswith("/files/"):
            self.path = "/" + path[len("/files/") :]
            return super().do_GET()
        return self.send_error(404)

    def _page(self, body: str) -> None:
        text = f"<!DOCTYPE html><html><body>\n{body}</body></html>\n"
        self._send(text.encode(), "text/html")

    def _send(self, data: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _core_metadata(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name)
