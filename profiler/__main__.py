from hwprof.presentation.cli import main

raise SystemExit(main())
