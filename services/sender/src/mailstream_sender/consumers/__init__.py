"""One module per queue the sender consumes: each translates a message into a call of the core or a repository."""
