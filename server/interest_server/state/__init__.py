"""Redis state: keys, connection, user record and store, catalog, Lua scripts
(docs/storage-format.md)."""
