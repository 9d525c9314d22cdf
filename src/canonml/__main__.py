"""``python -m canonml`` (so torchrun and plain python can launch the CLI)."""

from canonml.cli import entry

# The guard matters: a spawned helper process (canonml.evaluate.painter) imports this module
# under another name, and must not run the command again.
if __name__ == "__main__":
    entry()
