"""One module per queue automation consumes: each translates a message into calls on the core and repositories."""
