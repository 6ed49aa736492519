from align2.cli import main

main()
