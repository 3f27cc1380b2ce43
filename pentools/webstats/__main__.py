from pentools.webstats.cli import main

main()
