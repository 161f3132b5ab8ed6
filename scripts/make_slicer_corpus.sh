#!/usr/bin/env bash
# Regenerate jobs/tests/samples/real/: a 10 mm cube sliced by the real slicers Debian ships.
#
#   apt-get install prusa-slicer slic3r cura-engine   # bookworm: 2.5.0, 1.3.0, 4.13.0
#   bash scripts/make_slicer_corpus.sh
#
# CuraEngine needs Cura's machine definitions, which cura-engine does not ship: they are taken
# from the `cura` package of the same version (downloaded with apt-get, unpacked into a temporary
# directory, never installed or committed). Settings are the coarsest sensible ones (0.3 mm layers,
# one wall, no infill) so each file stays tens of KB. The output is committed as the programs wrote
# it; the tests in jobs/tests/test_slicer_corpus.py state what each file says.
set -euo pipefail

out="$(cd "$(dirname "$0")/.." && pwd)/jobs/tests/samples/real"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

want() {  # program, expected version, actual version
    if [[ "$3" != "$2" ]]; then
        echo "$1 is $3, the corpus is of $2" >&2
        exit 1
    fi
}
want prusa-slicer 2.5.0 "$(prusa-slicer --help 2>/dev/null | sed -n 's/^PrusaSlicer-\([0-9.]*\).*/\1/p')"
want slic3r 1.3.0 "$(slic3r --version 2>/dev/null)"
want CuraEngine 4.13.0 "$(CuraEngine 2>&1 | sed -n 's/^Cura_SteamEngine version //p')"

# A 10 mm cube, 12 triangles.
python3 - <<'PY'
v = [(0, 0, 0), (10, 0, 0), (10, 10, 0), (0, 10, 0), (0, 0, 10), (10, 0, 10), (10, 10, 10), (0, 10, 10)]
faces = [(0, 2, 1), (0, 3, 2), (4, 5, 6), (4, 6, 7), (0, 1, 5), (0, 5, 4),
         (1, 2, 6), (1, 6, 5), (2, 3, 7), (2, 7, 6), (3, 0, 4), (3, 4, 7)]
lines = ["solid cube"]
for face in faces:
    lines += ["  facet normal 0 0 0", "    outer loop"]
    lines += ["      vertex %d %d %d" % v[i] for i in face]
    lines += ["    endloop", "  endfacet"]
open("cube.stl", "w").write("\n".join(lines + ["endsolid cube", ""]))
PY

# PrusaSlicer 2.5.0: before 2.6, so no max_layer_z; the CLI renders no thumbnails.
cat > prusaslicer.ini <<'INI'
printer_model = MK3S
printer_settings_id = Original Prusa i3 MK3S
print_settings_id = 0.30mm DRAFT
filament_settings_id = "Prusament PLA"
filament_type = PLA
filament_colour = #FF8000
filament_density = 1.24
filament_diameter = 1.75
nozzle_diameter = 0.4
temperature = 210
first_layer_temperature = 215
bed_temperature = 60
first_layer_bed_temperature = 60
layer_height = 0.3
first_layer_height = 0.3
perimeters = 1
fill_density = 0%
top_solid_layers = 1
bottom_solid_layers = 1
skirts = 0
INI
prusa-slicer --datadir "$work/prusa-datadir" --load prusaslicer.ini --export-gcode cube.stl \
    -o "$out/prusaslicer-2.5.0.gcode" >/dev/null 2>&1

# Slic3r 1.3.0: writes no filament_type, no time estimate.
cat > slic3r.ini <<'INI'
filament_colour = #FF8000
filament_density = 1.24
filament_diameter = 1.75
nozzle_diameter = 0.4
temperature = 210
first_layer_temperature = 215
bed_temperature = 60
first_layer_bed_temperature = 60
layer_height = 0.3
first_layer_height = 0.3
perimeters = 1
fill_density = 0%
top_solid_layers = 1
bottom_solid_layers = 1
skirts = 0
INI
slic3r --load slic3r.ini cube.stl -o "$out/slic3r-1.3.0.gcode" >/dev/null

# CuraEngine 4.13.0 from the command line: the header is written before slicing, so it carries
# placeholders (;TIME:6666, ;Filament used: 0m, an inverted bounding box; for Griffin a 0.01 mm box).
apt-get download cura=4.13.0-1 >/dev/null 2>&1
dpkg-deb -x cura_4.13.0-1_all.deb cura
resources="$work/cura/usr/share/cura/resources"
export CURA_ENGINE_SEARCH_PATH="$resources/definitions:$resources/extruders"
coarse=(-s layer_height=0.3 -s layer_height_0=0.3 -s wall_line_count=1 -s infill_sparse_density=0
        -s top_layers=1 -s bottom_layers=1 -s adhesion_type=none)
CuraEngine slice -j "$resources/definitions/fdmprinter.def.json" "${coarse[@]}" \
    -s machine_heated_bed=true -s material_bed_temperature_layer_0=60 \
    -e0 -s material_diameter=1.75 -l cube.stl -o "$out/curaengine-4.13.0-marlin.gcode" >/dev/null 2>&1
CuraEngine slice -j "$resources/definitions/ultimaker_s5.def.json" "${coarse[@]}" \
    -s prime_tower_enable=false -s prime_blob_enable=false \
    -e0 -s machine_nozzle_id="AA 0.4" -l cube.stl -o "$out/curaengine-4.13.0-griffin.gcode" >/dev/null 2>&1

ls -l "$out"
