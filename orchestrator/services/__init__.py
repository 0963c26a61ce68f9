"""One function per operation; every front end (CLI, HTTP API, pages) calls these."""
