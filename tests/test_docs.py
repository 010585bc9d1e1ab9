"""The CLI reference mentions every command and flag the CLI has."""

from pathlib import Path

from bayesnas.cli import cli

CLI_DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_cli_reference_covers_every_flag():
    text = CLI_DOC.read_text()
    for name, command in cli.commands.items():
        assert f"## bayesnas {name}" in text
        for param in command.params:
            for flag in param.opts:
                assert flag in text, f"docs/cli.md lacks {name} {flag}"
