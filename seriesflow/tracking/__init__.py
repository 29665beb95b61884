"""MLflow: the registry plumbing and the self-contained pyfunc model."""
