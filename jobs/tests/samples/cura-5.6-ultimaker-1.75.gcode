;START_OF_HEADER
;HEADER_VERSION:0.1
;FLAVOR:Griffin
;GENERATOR.NAME:Cura_SteamEngine
;GENERATOR.VERSION:5.6.0
;GENERATOR.BUILD_DATE:2023-12-12
;TARGET_MACHINE.NAME:Creality Ender-3 S1
;EXTRUDER_TRAIN.0.INITIAL_TEMPERATURE:210
;EXTRUDER_TRAIN.0.MATERIAL.VOLUME_USED:2950
;EXTRUDER_TRAIN.0.NOZZLE.DIAMETER:0.4
;EXTRUDER_TRAIN.0.NOZZLE.NAME:0.4mm Nozzle
;BUILD_PLATE.INITIAL_TEMPERATURE:60
;PRINT.TIME:5025
;PRINT.GROUPS:1
;PRINT.SIZE.MIN.X:87.5
;PRINT.SIZE.MIN.Y:91
;PRINT.SIZE.MIN.Z:0.27
;PRINT.SIZE.MAX.X:112.5
;PRINT.SIZE.MAX.Y:116
;PRINT.SIZE.MAX.Z:10.2
;SLICE_UUID:1c3a7fd4-02a1-4d86-9b5f-0b5c9c3b7c12
;END_OF_HEADER
;Generated with Cura_SteamEngine 5.6.0
T0
M82 ;absolute extrusion mode
G92 E0
M109 S210
;LAYER_COUNT:1
;LAYER:0
G0 F6000 X110.5 Y110.5 Z0.27
;TYPE:WALL-OUTER
G1 X112.5 Y91.0 E1.00000
;TIME_ELAPSED:5025.000000
M104 S0
;End of Gcode
;SETTING_3 {"global_quality": "[general]\\nversion = 4\\nname = Standard Qualit
;SETTING_3 y #2\\ndefinition = creality_ender3s1\\n\\n[metadata]\\ntype = quality_
;SETTING_3 changes\\nquality_type = standard\\nsetting_version = 22\\n\\n[values]\\
;SETTING_3 nmaterial_diameter = 1.75\\n\\n", "extruder_quality": ["[general]\\nver
;SETTING_3 sion = 4\\nname = Standard Quality #2\\ndefinition = creality_ender3s1\\
;SETTING_3 n\\n[metadata]\\ntype = quality_changes\\nquality_type = standard\\nsett
;SETTING_3 ing_version = 22\\nposition = 0\\n\\n[values]\\n\\n"]}
