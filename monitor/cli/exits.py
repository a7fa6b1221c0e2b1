"""The exit codes of every command: 0 ok, 1 runtime failure, 2 bad input."""

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
