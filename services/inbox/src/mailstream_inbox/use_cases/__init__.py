"""Actions that more than one entry point performs (a route and a consumer), each written once."""
