"""Operations: UI artifacts, events, alerts, the reports server, the MLflow UI
helper, secrets, fault points, optional extras."""
