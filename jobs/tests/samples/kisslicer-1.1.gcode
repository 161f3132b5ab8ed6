; KISSlicer - FREE
; Linux
; version 1.1.0.5
; Built: Jan 24 2013, 09:10:05
; Running on 2 cores
;
; *** Printer Settings ***
;
; printer_name = sample printer
; num_extruders = 1
; firmware_type = 2
;
; *** Material Settings for Extruder 1 ***
;
; material_name = sample material
; temperature_C = 200
; keep_warm_C = 180
; first_layer_C = 200
; bed_C = 60
; fiber_dia_mm = 2.85
;
; *** Style Settings ***
;
; style_name = sample style
; layer_thickness_mm = 0.25
; extrusion_width_mm = 0.5
;
; *** G-code Prefix ***
;
G21 ; Set to metric
M82 ; Absolute Extruder
G90 ; Absolute Positioning
G28 ; Go home
M104 S210 ; set extruder temp S200
M190 S60 ; set bed temp & wait S55
M109 S210 ; wait for extruder temp
;
; *** Main G-code ***
;
; Reset extruder pos
G92 E0
; BEGIN_LAYER_OBJECT z=1.00
G1 F9000
G1 X-9.72 Y-9.72 Z1 E0
G1 F546.9
G1 X-9.74 Y9.43 E0.2955
G1 X9.42 Y9.74 E0.5956
G1 F210
G1 X-9.74 Y0.28 Z1.25 E0.5956
; END_LAYER_OBJECT z=1.00
; Reset extruder pos
G92 E0
; BEGIN_LAYER_OBJECT z=1.25
G1 F9000
G1 X-9.72 Y-9.72 Z1.25 E0
G1 F608.6
G1 X-9.74 Y9.43 E0.2955
G1 X9.42 Y9.74 E0.5956
G1 F210
G1 X-9.74 Y0.28 Z1.5 E0.5956
; END_LAYER_OBJECT z=1.25
;
; *** G-code Postfix ***
;
M104 S0
M140 S0
G1 X-95 Y-100 F9000
G1 Z200
M84
;
; Estimated Build Time:   2.50 minutes
; Estimated Build Volume: 0.314 cm^3
; Estimated Build Cost:   $0.00
