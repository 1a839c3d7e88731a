"""The onboarding journey on the control API: the chat relay, the agent and checkout from its result, progress."""
