from plastix.cli import app

app(prog_name="plastix")
