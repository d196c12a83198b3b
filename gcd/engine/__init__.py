"""Everything that talks to the Docker engine: the client facade (the only importer of the
docker SDK), the snapshot, the executor, layer accounting and last-use events."""
