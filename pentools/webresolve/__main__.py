from pentools.webresolve.cli import main

main()
