"""Shoulder-girdle muscle analysis: segmentation, volume, CSA, edema, fat, atrophy and grades.

Public API: :func:`analyze_muscles` (-> :class:`MuscleAnalysis`) and :func:`export_nnunet`.
"""
from nervemuscle.muscle.analyze import MuscleAnalysis, analyze_muscles
from nervemuscle.muscle.nnunet import export_nnunet

__all__ = ["MuscleAnalysis", "analyze_muscles", "export_nnunet"]
