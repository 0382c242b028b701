"""placeholder while under development"""
import numpy as np
BONE_WINDOW_HU = (-700.0, 1300.0)
def bone_window(pixels):
    lo, hi = BONE_WINDOW_HU
    return (np.clip((pixels - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
class ClassicalSegmenter:
    pass
