"""`python -m eastwest …` is the `eastwest` command."""
from eastwest.inference.cli import main

raise SystemExit(main())
