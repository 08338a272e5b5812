"""The CLI's client and its local state: the HTTP client, config and workspace files, locks, and how things
print (tables, sizes, progress, terminal widths). Imports nothing else of the CLI."""
