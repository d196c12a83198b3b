from gcd.cli import main

raise SystemExit(main())
