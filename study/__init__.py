"""The rate–distortion study: tables and comparisons read from finished runs."""
