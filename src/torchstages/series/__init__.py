"""Time series: read, split chronologically, window, evaluate against naive forecasts, export."""
