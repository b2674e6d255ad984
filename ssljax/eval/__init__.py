"""Evaluation: frozen features, linear probe, weighted kNN, the online kNN
monitor, clustering, representation health, robustness and pictures."""

from ssljax.eval.clustering import cluster_accuracy, cluster_scores
from ssljax.eval.features import extract_features, map_in_batches
from ssljax.eval.health import (alignment, collapse_report, effective_rank,
                                uniformity)
from ssljax.eval.knn import knn_accuracy, knn_predict
from ssljax.eval.linear import (fit_logistic_regression, linear_probe,
                                linear_probe_accuracy, select_l2,
                                train_linear_classifier)
from ssljax.eval.monitor import KNNMonitor
from ssljax.eval.plots import (curves_plot, embed_2d, embedding_plot,
                               retrieval_grid, retrieve)
from ssljax.eval.robustness import (CORRUPTIONS, SEVERITY_PARAMS, accuracy_fn,
                                    corrupt, corrupt_dataset,
                                    format_robustness_table, robustness_table)

__all__ = [
    "CORRUPTIONS", "KNNMonitor", "SEVERITY_PARAMS", "accuracy_fn", "alignment",
    "cluster_accuracy", "cluster_scores", "collapse_report", "corrupt",
    "corrupt_dataset", "curves_plot", "effective_rank", "embed_2d",
    "embedding_plot", "extract_features", "map_in_batches", "fit_logistic_regression",
    "format_robustness_table", "knn_accuracy", "knn_predict", "linear_probe",
    "linear_probe_accuracy", "retrieval_grid", "retrieve", "robustness_table",
    "select_l2", "train_linear_classifier", "uniformity"]
