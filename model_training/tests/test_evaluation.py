"""Class decisions, confidences and confusion matrices."""

from __future__ import annotations

import numpy as np

from model_training.evaluation import classes_of, confidences_of, confusion_matrix


def test_confusion_matrix_counts_true_rows_against_predicted_columns() -> None:
    labels = np.array([[0], [1], [2], [2]], dtype=np.uint8)
    scores = np.array([[0.9, 0.1, 0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0, 0, 1]])
    assert confusion_matrix(labels, scores) == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_confusion_matrix_of_a_single_sigmoid_output_has_two_classes() -> None:
    labels = np.array([0, 1, 1])
    scores = np.array([[0.2], [0.9], [0.4]])
    assert confusion_matrix(labels, scores) == [[1, 0], [1, 1]]


def test_regression_labels_have_no_confusion_matrix() -> None:
    assert confusion_matrix(np.array([0.5, 1.25]), np.array([[0.4], [1.2]])) is None
    assert confusion_matrix(np.zeros((2, 3)), np.zeros((2, 3))) is None


def test_confidence_of_a_single_score_is_the_likelier_side() -> None:
    scores = np.array([[0.1], [0.7]])
    assert classes_of(scores).tolist() == [0, 1]
    assert np.allclose(confidences_of(scores), [0.9, 0.7])
