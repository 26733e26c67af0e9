from roberta_ft.cli import main

main()
