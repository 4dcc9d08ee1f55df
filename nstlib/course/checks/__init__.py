"""Automatic checks for the course's exercises: ``nstlib.course.checks.check_<name>(fn)``.

Each check calls the student's function on small inputs, compares it with the library's
reference, and prints a clear PASS or FAIL with a hint. It never lets a traceback from deep
inside torch reach the student: an exception raised by the student's code (including the
``NotImplementedError`` of an unsolved exercise) is reported as a FAIL with the hint.

Returns True on pass, False on fail, so a notebook cell can also ``assert`` it.
"""
from .common import report, run_check
from .conventions import check_paper_to_nstlib
from .distribution import check_mean_std_loss
from .optimization import check_adam_loop, check_gradient_norms
from .predictions import check_prediction
from .representation import check_content_loss, check_gram_matrix, check_receptive_field
from .transfer import check_masked_gram, check_total_loss

__all__ = ["report", "run_check", "check_receptive_field", "check_content_loss", "check_gram_matrix",
           "check_gradient_norms", "check_adam_loop", "check_masked_gram", "check_total_loss",
           "check_prediction", "check_mean_std_loss", "check_paper_to_nstlib"]
