"""Cohort statistics: group proportions with CIs, ALS vs MMN tests, clinical correlation,
diagnostic accuracy, reader agreement, and the paper-style table and report."""
from nervemuscle.stats.cohort import analyse_cohort, pool_cohort
from nervemuscle.stats.report import format_paper_comparison, format_reader_agreement, run_cohort

__all__ = ["analyse_cohort", "format_paper_comparison", "format_reader_agreement", "pool_cohort", "run_cohort"]
