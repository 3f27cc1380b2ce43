from pentools.mergelogs.cli import main

main()
