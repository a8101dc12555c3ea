"""Observability: token counts, cost, metrics, exporters and budgets.

Everything heavy (tokenizers, the price table, OpenTelemetry, Prometheus) is
imported lazily inside functions, so importing this package stays cheap.
"""
