"""One router per resource: rules, runs."""
