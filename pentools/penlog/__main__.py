from pentools.penlog.cli import main

main()
