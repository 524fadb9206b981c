"""Digital brachial-plexus phantom and virtual ALS/MMN/control cohort with exact ground truth.

Public API: :func:`make_subject`, :data:`ACQUISITIONS`, :func:`acquire`, :func:`exam_truth`,
:func:`simulate_exam`, :func:`simulate_cohort`; anatomy families :data:`ANATOMY_FAMILIES` (``anatomy=`` keyword,
``mixed`` draws one per exam). See docs/phantom.md.
"""
from nervemuscle.phantom.acquisition import ACQUISITIONS, Acquisition, acquire
from nervemuscle.phantom.cohort import simulate_cohort
from nervemuscle.phantom.exam import EXAM_KINDS, simulate_exam
from nervemuscle.phantom.subject import ANATOMY_CHOICES, ANATOMY_FAMILIES, PHENOTYPES, Subject, make_subject
from nervemuscle.phantom.truth import exam_truth

__all__ = [
    "ANATOMY_CHOICES", "ANATOMY_FAMILIES", "ACQUISITIONS", "Acquisition", "EXAM_KINDS", "PHENOTYPES", "Subject", "acquire", "exam_truth",
    "make_subject", "simulate_cohort", "simulate_exam",
]
