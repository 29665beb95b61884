"""Scoring: metrics, the backtest, the gate, the champion, live accuracy, plots and tables."""
