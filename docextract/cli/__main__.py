import sys

from docextract.cli.main import main

sys.exit(main())
