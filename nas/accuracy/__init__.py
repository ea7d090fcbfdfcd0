"""Accuracy providers: benchmark tables now; predictors, zero-cost proxies and training as they land."""

from nas.accuracy.tables import table_accuracy

__all__ = ["table_accuracy"]
