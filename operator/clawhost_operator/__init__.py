"""The clawhost operator: reconciles each Customer into a namespace running its OpenClaw gateway."""
