"""The evidence that the engines agree, and the `hiercheck` command."""
