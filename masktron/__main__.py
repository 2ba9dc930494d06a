import sys

from masktron.cli.main import main

sys.exit(main())
