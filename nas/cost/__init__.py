"""Cost providers: measured tables, analytic counts; LUTs, predictors and measurement as they land."""

from nas.cost.counts import CountProvider, layer_macs, layer_params
from nas.cost.table import table_latency

__all__ = ["CountProvider", "layer_macs", "layer_params", "table_latency"]
