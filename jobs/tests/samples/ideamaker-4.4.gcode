;Sliced by ideaMaker 4.4.1.6192, 2024-03-01 10:00:00
;Dimension: 305.000 305.000 300.000 0.400 0.400
;Plate Shape: 0
;Origin Center: 0
;Printer Type: RAISE3D Pro2 Plus
;Extruder Offset #1: 0.000 0.000
;Filament Name #1: [Raise3D] PLA
;Filament Type #1: PLA
;Filament Diameter #1: 1.750
;Filament Density #1: 1.240
;Bounding Box: 147.500 157.500 147.500 157.500 0.000 10.000
M140 S60
M190 S60
M104 T0 S210
M109 T0 S210
G28
;LAYER:0
;HEIGHT:0.300
G1 Z0.300 F600
G1 X147.500 Y147.500 E0.5000 F1200
;Print Time: 3722
;Material#1 Used: 1234.5
