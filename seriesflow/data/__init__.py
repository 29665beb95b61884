"""The input contract: schema, calendars, the expectations, drift, Data Docs, input errors."""
