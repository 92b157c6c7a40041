"""Getting accepted posts to the members: the workers and the relays they send through."""
