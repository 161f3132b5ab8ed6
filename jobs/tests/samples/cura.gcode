;
; thumbnail begin 32x32 160
; iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAIAAAD8GO2jAAAAPklEQVR42mPU0dFhoCVgYqAxGLVg1A
; LKAQsuCbY5eqSa9Svl0mgcjFowasGoBaMWjFqAHTCONrxGLRj8FgAAyLIESVGP9VwAAAAASUVORK5C
; YII=
; thumbnail end
;
;FLAVOR:Marlin
;TIME:4321
;Filament used: 1.2m, 0.03456m
;Layer height: 0.2
;MINX:87.5
;MINY:91
;MINZ:0.2
;MAXX:112.5
;MAXY:116
;MAXZ:10.2
;TARGET_MACHINE.NAME:Creality Ender-3 Pro
;Generated with Cura_SteamEngine 5.6.0
M140 S60
M105
M190 S60
M104 S200
M105
M109 S200
M82 ;absolute extrusion mode
; Ender 3 Custom Start G-code
G92 E0 ; Reset Extruder
G28 ; Home all axes
G1 Z2.0 F3000 ; Move Z Axis up little to prevent scratching of Heat Bed
G1 X0.1 Y20 Z0.3 F5000.0 ; Move to start position
G1 X0.1 Y200.0 Z0.3 F1500.0 E15 ; Draw the first line
G92 E0 ; Reset Extruder
G1 Z2.0 F3000 ; Move Z Axis up little to prevent scratching of Heat Bed
M82 ;absolute extrusion mode
G92 E0
G92 E0
G1 F2700 E-5
;LAYER_COUNT:51
;LAYER:0
G0 F6000 X110.5 Y110.5 Z0.2
;TYPE:WALL-OUTER
G1 X112.5 Y91.0 E1.00000
G1 X112.5 Y116.0 E2.00000
G1 X87.5 Y116.0 E3.00000
G1 X87.5 Y91.0 E4.00000
;LAYER:1
G0 F6000 X110.5 Y110.5 Z0.4
;TYPE:WALL-OUTER
G1 X112.5 Y91.0 E1.00000
G1 X112.5 Y116.0 E2.00000
G1 X87.5 Y116.0 E3.00000
G1 X87.5 Y91.0 E4.00000
;LAYER:2
G0 F6000 X110.5 Y110.5 Z0.6
;TYPE:WALL-OUTER
G1 X112.5 Y91.0 E1.00000
G1 X112.5 Y116.0 E2.00000
G1 X87.5 Y116.0 E3.00000
G1 X87.5 Y91.0 E4.00000
;TIME_ELAPSED:4321.000000
G1 F2700 E1229.56
M140 S0
M107
G91 ;Relative positioning
G1 E-2 F2700 ;Retract a bit
G1 E-2 Z0.2 F2400 ;Retract and raise Z
G1 X5 Y5 F3000 ;Wipe out
G1 Z10 ;Raise Z more
G90 ;Absolute positioning
G1 X0 Y235 ;Present print
M106 S0 ;Turn-off fan
M104 S0 ;Turn-off hotend
M140 S0 ;Turn-off bed
M84 X Y E ;Disable all steppers but Z
M82 ;absolute extrusion mode
M104 S0
;End of Gcode
;SETTING_3 {"global_quality": "[general]\\nversion = 4\\nname = Standard Quality #2\\ndefi
;SETTING_3 nition = creality_ender3pro\\n\\n[metadata]\\ntype = quality_changes\\nqualit
;SETTING_3 y_type = standard\\nsetting_version = 22\\n\\n[values]\\n\\n", "extruder_qu
;SETTING_3 ality": []}
