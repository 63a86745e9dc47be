from helm_monitor.cli import main

raise SystemExit(main())
