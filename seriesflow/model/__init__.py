"""The forecaster: scaler, windows, the LSTM family, saved models,
forecasts, intervals, classical models."""
