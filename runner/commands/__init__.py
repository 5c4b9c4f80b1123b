"""One module per subcommand, each with a body that returns an exit code (pre-commit's
`commands/`); `wiring` builds what they share, `outcomes` holds what they return."""
