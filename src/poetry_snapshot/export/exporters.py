"""The format -> exporter table (as poetry-plugin-export's EXPORT_METHODS): one entry each."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Callable

from poetry_snapshot.export import conda
from poetry_snapshot.export import env_manifest
from poetry_snapshot.export import requirements
from poetry_snapshot.export.request import CONDA
from poetry_snapshot.export.request import JSON
from poetry_snapshot.export.request import PYLOCK_TOML
from poetry_snapshot.export.request import REQUIREMENTS_TXT

if TYPE_CHECKING:
    from cleo.io.io import IO
    from poetry.poetry import Poetry

    from poetry_snapshot.export.request import ExportRequest
    from poetry_snapshot.export.request import ExportResult

Exporter = Callable[["Poetry", "ExportRequest", "IO"], "ExportResult"]

EXPORTERS: dict[str, Exporter] = {
    CONDA: conda.export_conda,
    REQUIREMENTS_TXT: requirements.export_requirements_txt,
    PYLOCK_TOML: requirements.export_pylock_toml,
    JSON: env_manifest.export_json,
}


def export(poetry: Poetry, request: ExportRequest, io: IO) -> ExportResult:
    return EXPORTERS[request.format](poetry, request, io)
