"""Evaluation: frozen features, linear probe, weighted kNN, the online kNN monitor."""

from ssljax.eval.features import extract_features
from ssljax.eval.knn import knn_accuracy, knn_predict
from ssljax.eval.linear import linear_probe_accuracy, train_linear_classifier
from ssljax.eval.monitor import KNNMonitor

__all__ = ["KNNMonitor", "extract_features", "knn_accuracy", "knn_predict",
           "linear_probe_accuracy", "train_linear_classifier"]
