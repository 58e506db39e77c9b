from hercc.cli.main import run

run()
