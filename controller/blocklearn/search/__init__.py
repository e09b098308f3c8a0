"""Index -> search: the search API's shapes, its HTTP server, authentication and distinct answers."""
