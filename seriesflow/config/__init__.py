"""The typed configuration: one frozen section per stage, the YAML file and --set overrides."""
