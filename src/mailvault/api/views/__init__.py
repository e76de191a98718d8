"""API views, one module per area; thin: validate, call the service, serialize."""
