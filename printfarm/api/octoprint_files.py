"""Library entries as OctoPrint's `/api/files/local/<path>` resource: found by their path
(the folder the slicer uploaded to, then the name) and described in OctoPrint's file shape."""

from __future__ import annotations

from jobs.models import GcodeFile


def path_of(file: GcodeFile) -> str:
    """The file's OctoPrint path: `folder/name`, or the name at the top."""
    return f"{file.folder}/{file.name}" if file.folder else file.name


def file_find(path: str) -> GcodeFile | None:
    """The newest present library entry at `path` (the same name can be uploaded again)."""
    folder, _, name = path.strip("/").rpartition("/")
    return (
        GcodeFile.objects.present().filter(folder=folder, name=name).order_by("-uploaded_at", "-pk").first()
    )


def filament(file: GcodeFile) -> dict:
    """OctoPrint's filament per tool (`tool0` is slot 1; mm, volume unknown)."""
    if file.filaments:
        return {
            f"tool{max(int(f.get('slot') or 1) - 1, 0)}": {"length": f.get("mm"), "volume": None}
            for f in file.filaments
        }
    if file.filament_mm is not None:
        return {"tool0": {"length": file.filament_mm, "volume": None}}
    return {}


def file_info(file: GcodeFile, *, refs: dict[str, str]) -> dict:
    """The file as OctoPrint describes it; `refs` holds its resource URL (and printfarm's page)."""
    seconds = file.estimated_seconds
    return {
        "name": file.name,
        "display": file.name,
        "path": path_of(file),
        "type": "machinecode",
        "typePath": ["machinecode", "gcode"],
        "origin": "local",
        "size": file.size,
        "date": int(file.uploaded_at.timestamp()),
        "refs": refs,
        "gcodeAnalysis": {
            "estimatedPrintTime": seconds,
            "filament": filament(file),
            # The metadata was read when the file arrived, so the analysis is always done. Cura
            # waits for this key (PrintTimeGenius's: fraction of the file, seconds left).
            "progress": [[0.0, seconds], [1.0, 0]] if seconds is not None else [],
        },
    }
