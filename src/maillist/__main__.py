from maillist.cli import main

main()
