"""One router per resource; `app.create_app` includes each module's `router`."""
