"""The `masktron` command line (see `masktron.cli.main`)."""
