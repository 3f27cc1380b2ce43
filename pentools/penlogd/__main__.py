from pentools.penlogd.cli import main

main()
