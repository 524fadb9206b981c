"""nervemuscle: systematic MRI assessment of peripheral nerve and muscle in motor neuron disease.

World convention (as NIfTI): every :class:`~nervemuscle.volume.Volume` carries a 4x4 affine
mapping voxel indices (i, j, k) to world millimetres in RAS+: +x towards the patient's Right,
+y Anterior, +z Superior. DICOM's LPS is converted once, when a series is read.
"""
from nervemuscle._version import __version__

__all__ = ["__version__"]
