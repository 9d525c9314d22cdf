"""Evaluation: test-set metrics over scikit-learn."""
