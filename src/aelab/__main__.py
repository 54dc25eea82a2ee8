from aelab.cli import entry

entry()
