; HEADER_BLOCK_START
; BambuStudio 01.10.01.50
; model printing time: 52m 30s; total estimated time: 1h 2m 3s
; total layer number: 101
; total filament length [mm] : 2178.61
; total filament volume [cm^3] : 5240.18
; total filament weight [g] : 6.60
; filament_density: 1.26,1.26
; filament_diameter: 1.75,1.75
; max_z_height: 20.20
; HEADER_BLOCK_END

; CONFIG_BLOCK_START
; accel_to_decel_enable = 0
; bed_custom_model = 
; bed_exclude_area = 0x0,18x0,18x28,0x28
; change_filament_gcode = M620 S[next_extruder]A\nM204 S9000\nG1 Z{max_layer_z + 3.0} F1200\n\nM400\nM106 P1 S0\nM106 P2 S0\n{if old_filament_temp > 142 && next_extruder < 255}\nM104 S[old_filament_temp]\n{endif}\nM620.1 E F[old_filament_e_feedrate] T{nozzle_temperature_range_high[previous_extruder]}\nT[next_extruder]\nM621 S[next_extruder]A
; cool_plate_temp = 35,35
; cool_plate_temp_initial_layer = 35,35
; curr_bed_type = High Temp Plate
; default_filament_profile = "Bambu PLA Basic @BBL X1C"
; eng_plate_temp = 55,55
; eng_plate_temp_initial_layer = 55,55
; filament_colour = #FFFFFF;#000000
; filament_settings_id = "Bambu PLA Basic @BBL X1C";"Bambu PLA Basic @BBL X1C"
; filament_type = PLA;PLA
; gcode_flavor = marlin
; hot_plate_temp = 55,55
; hot_plate_temp_initial_layer = 55,55
; initial_layer_print_height = 0.2
; layer_height = 0.2
; nozzle_diameter = 0.4
; nozzle_temperature = 220,220
; nozzle_temperature_initial_layer = 220,225
; printable_height = 250
; printer_model = Bambu Lab X1 Carbon
; printer_settings_id = Bambu Lab X1 Carbon 0.4 nozzle
; textured_plate_temp = 55,55
; textured_plate_temp_initial_layer = 55,55
; thumbnails = 
; CONFIG_BLOCK_END

; THUMBNAIL_BLOCK_START

;
; thumbnail begin 128x128 372
; iVBORw0KGgoAAAANSUhEUgAAAIAAAACACAIAAABMXPacAAAA3klEQVR42u3UwQnAIBREQZXcbGV7sH
; aLyt0iRCRhXgPCDt+apOhezQQAAAgAAAEAIAAABACAAAAQAAACAEAAAAgAAAEAIAAABACAAAAQAADa
; 7zn9wBzv1zcas7sAX5AAABAAAAIAQAAACAAAAQAgAAAEAIAAABAAAAIAQAAACAAAAQAgAAAEAIAAAB
; AAAAIAQAAACAAAAQAAQAAACAAAAQAgAAAEAIAAABAAAAIAQAD+XE1iBRcAQAAACAAAAQAgAAAEAIAA
; ABAAAAIAQAAACAAAAQAgAAAEAIAAANBmC5FgBQnENZcbAAAAAElFTkSuQmCC
; thumbnail end
;
; THUMBNAIL_BLOCK_END

; EXECUTABLE_BLOCK_START
M73 P0 R62
M201 X20000 Y20000 Z500 E5000
M203 X500 Y500 Z20 E30
M204 P20000 R5000 T20000
;===== machine: X1 ====================
;===== date: 20230707 ==================
M140 S55 ;set bed temp
M190 S55 ;wait for bed temp
M104 S140 ; prepare to wipe nozzle
M109 S220
M975 S1 ; turn on
G90
M83
; CHANGE_LAYER
; Z_HEIGHT: 0.2
; LAYER_HEIGHT: 0.2
G1 Z0.2 F720
; FEATURE: Outer wall
; LINE_WIDTH: 0.42
G1 X112.5 Y91.0 E1.00000
G1 X112.5 Y116.0 E1.00000
G1 X87.5 Y116.0 E1.00000
G1 X87.5 Y91.0 E1.00000
; CHANGE_LAYER
; Z_HEIGHT: 0.4
; LAYER_HEIGHT: 0.2
G1 Z0.4 F720
; FEATURE: Outer wall
; LINE_WIDTH: 0.42
G1 X112.5 Y91.0 E1.00000
G1 X112.5 Y116.0 E1.00000
G1 X87.5 Y116.0 E1.00000
G1 X87.5 Y91.0 E1.00000
; FEATURE: Custom
M400 ; wait for buffer to clear
G92 E0 ; zero the extruder
M140 S0 ; turn off bed
M106 S0 ; turn off fan
M104 S0 ; turn off hotend
M73 P100 R0
; EXECUTABLE_BLOCK_END

