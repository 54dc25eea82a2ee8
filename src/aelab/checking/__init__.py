"""The checks every part is held to, built-in or a user's: `aelab check` and the test suite's registry loop."""
