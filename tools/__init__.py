"""Developer tools of this repository, not part of the installed package (pyproject: mlops* only)."""
