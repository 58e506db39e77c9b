from hercc.cli import run

run()
